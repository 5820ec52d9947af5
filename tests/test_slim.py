"""Slimmed export equals the masked model and is smaller, for DCGAN and StyleGAN2."""
from __future__ import annotations

import pytest
import torch
from helpers import tiny_stylegan2_config

from fsgen_hub.auto import AutoGenerator
from fsgen_hub.methods.pruning import FilterMasks
from fsgen_hub.models.dcgan import DCGANConfig, DCGANGenerator
from fsgen_hub.models.slim import slim_generator
from fsgen_hub.models.stylegan2 import StyleGAN2Generator


def masked_copy(G, seed=0):
    gen = torch.Generator().manual_seed(seed)
    masks = FilterMasks(G, G.filter_layers())
    for layer in G.filter_layers():
        m = torch.rand(layer.num_filters, generator=gen) < 0.4
        m[0] = False  # keep at least one filter per layer
        masks.pruned[layer.name] = m
    masks.apply_to_weights()
    return masks


@pytest.mark.parametrize("make", [
    lambda: DCGANGenerator(DCGANConfig(resolution=32, nz=8, ngf=6)),
    lambda: StyleGAN2Generator(tiny_stylegan2_config(32, channels={"4": 8, "8": 8, "16": 6, "32": 6})),
])
def test_slim_equals_masked_and_is_smaller(tmp_path, make):
    torch.manual_seed(0)
    G = make().eval()
    if hasattr(G, "mean_latent"):
        G.mean_latent(64)
        for m in G.modules():
            if type(m).__name__ == "NoiseInjection":
                m.weight.data.fill_(0.3)  # noise must not leak through pruned channels
    masks = masked_copy(G)
    slim = slim_generator(G, masks.pruned)
    assert sum(p.numel() for p in slim.parameters()) < sum(p.numel() for p in G.parameters())
    z = torch.randn(3, G.z_dim)
    with torch.no_grad():
        assert (slim(z, noise_mode="const") - G(z, noise_mode="const")).abs().max() <= 1e-5
    slim.save_pretrained(tmp_path / "slim")
    loaded = AutoGenerator.from_pretrained(tmp_path / "slim")
    with torch.no_grad():
        assert (loaded(z, noise_mode="const") - G(z, noise_mode="const")).abs().max() <= 1e-5


def test_slimming_a_whole_layer_is_refused():
    G = DCGANGenerator(DCGANConfig(resolution=16, nz=4, ngf=2))
    with pytest.raises(Exception, match="every filter pruned"):
        slim_generator(G, {"main.0": torch.ones(4, dtype=torch.bool)})
