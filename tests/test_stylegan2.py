"""StyleGAN2: parity with the rosinality and NVlabs reference outputs, and the generator API on tiny models."""
from __future__ import annotations

import json

import pytest
import torch
from helpers import PARITY_ATOL, tiny_stylegan2_config

from fsgen_hub.auto import AutoDiscriminator, AutoGenerator
from fsgen_hub.models.stylegan2 import StyleGAN2Discriminator, StyleGAN2Generator
from fsgen_hub.utils.errors import CheckpointError


def tiny_config(resolution=16, **kw):
    return tiny_stylegan2_config(resolution, channels=8, style_dim=16, n_mlp=2, **kw)


@pytest.fixture
def tiny_sg2():
    torch.manual_seed(0)
    G = StyleGAN2Generator(tiny_config())
    G.mean_latent(256)
    return G, StyleGAN2Discriminator(tiny_config())


def test_rosinality_parity(shared_dir):
    from fsgen_hub.models.convert_stylegan2 import convert_rosinality

    fixture = shared_dir / "fixtures" / "rosinality_32"
    G, D, info = convert_rosinality(fixture / "checkpoint.pt")
    ref = torch.load(fixture / "reference.pt", weights_only=True)
    with torch.no_grad():
        assert (G(ref["z"], noise=ref["noise"]) - ref["img"]).abs().max() <= PARITY_ATOL
        assert (G(ref["z"], noise=ref["noise"], truncation=0.7) - ref["img_trunc_0.7"]).abs().max() <= PARITY_ATOL
        assert (D(ref["img"]) - ref["d_logits"]).abs().max() <= PARITY_ATOL
    assert info["format"] == "rosinality" and G.config.channels["32"] == 32


def test_stylegan2ada_parity(shared_dir):
    from safetensors.torch import load_file

    from fsgen_hub.models.convert_stylegan2 import convert_nvlabs_state

    fixture = shared_dir / "fixtures" / "stylegan2ada_32"
    kwargs = json.loads((fixture / "init_kwargs.json").read_text())
    G, D = convert_nvlabs_state(load_file(fixture / "G_ema.safetensors"), kwargs["G_ema_init_kwargs"],
                                load_file(fixture / "D.safetensors"), kwargs["D_init_kwargs"])
    ref = torch.load(fixture / "reference.pt", weights_only=True)
    with torch.no_grad():
        assert (G(ref["z"], noise_mode="const") - ref["img"]).abs().max() <= PARITY_ATOL
        assert (G(ref["z"], noise_mode="const", truncation=0.7) - ref["img_trunc_0.7"]).abs().max() <= PARITY_ATOL
        assert (D(ref["img"]) - ref["d_logits"]).abs().max() <= PARITY_ATOL


@pytest.mark.parametrize("resolution", [16, 32])
def test_shapes_and_features(resolution):
    G, D = StyleGAN2Generator(tiny_config(resolution)), StyleGAN2Discriminator(tiny_config(resolution))
    img, feats = G(torch.randn(2, 16), return_features=True)
    assert img.shape == (2, 3, resolution, resolution)
    assert [f.shape[-1] for f in feats.values()] == sorted(f.shape[-1] for f in feats.values())  # low res first
    logits, dfeats = D(img, return_features=True)
    assert logits.shape == (2, 1) and list(dfeats.values())[0].shape[-1] == resolution


@pytest.mark.parametrize("resolution", [8, 48, 2048])
def test_bad_resolution_is_a_clear_error(resolution):
    with pytest.raises(CheckpointError, match="power of two"):
        tiny_config(resolution)


def test_truncation_zero_collapses_to_mean(tiny_sg2):
    G, _ = tiny_sg2
    with torch.no_grad():
        a = G(torch.randn(1, 16), truncation=0.0, noise_mode="const")
        b = G(torch.randn(1, 16), truncation=0.0, noise_mode="const")
        c = G(torch.randn(1, 16), truncation=1.0, noise_mode="const")
    assert torch.allclose(a, b, atol=1e-6) and not torch.allclose(a, c, atol=1e-3)


def test_w_and_wplus_inputs_match_z_path(tiny_sg2):
    G, _ = tiny_sg2
    z = torch.randn(2, 16)
    with torch.no_grad():
        from_z = G(z, noise_mode="const")
        w = G.mapping(z)
        assert torch.allclose(G(w, input_space="w", noise_mode="const"), from_z, atol=1e-6)
        wplus = w.unsqueeze(1).repeat(1, G.n_latent, 1)
        assert torch.allclose(G(wplus, input_space="w+", noise_mode="const"), from_z, atol=1e-6)


def test_style_mixing_uses_second_latent_after_crossover(tiny_sg2):
    G, _ = tiny_sg2
    z1, z2 = torch.randn(1, 16), torch.randn(1, 16)
    with torch.no_grad():
        w1, w2 = G.mapping(z1), G.mapping(z2)
        manual = torch.cat([w1.unsqueeze(1).repeat(1, 3, 1), w2.unsqueeze(1).repeat(1, G.n_latent - 3, 1)], 1)
        mixed = G(z1, mix_z=z2, mix_index=3, noise_mode="const")
        assert torch.allclose(mixed, G(manual, input_space="w+", noise_mode="const"), atol=1e-6)
        assert not torch.allclose(mixed, G(z1, noise_mode="const"), atol=1e-4)


def test_noise_modes(tiny_sg2):
    G, _ = tiny_sg2
    with torch.no_grad():
        for p in G.modules():
            if hasattr(p, "weight") and type(p).__name__ == "NoiseInjection":
                p.weight.fill_(0.5)
        z = torch.randn(1, 16)
        assert torch.equal(G(z, noise_mode="const"), G(z, noise_mode="const"))
        assert not torch.equal(G(z, noise_mode="random"), G(z, noise_mode="random"))
        assert not torch.allclose(G(z, noise_mode="none"), G(z, noise_mode="const"))


def test_save_load_round_trip_is_exact(tmp_path, tiny_sg2):
    G, D = tiny_sg2
    G.save_pretrained(tmp_path / "m", discriminator=D)
    G2, D2 = AutoGenerator.from_pretrained(tmp_path / "m"), AutoDiscriminator.from_pretrained(tmp_path / "m")
    assert isinstance(G2, StyleGAN2Generator) and isinstance(D2, StyleGAN2Discriminator)
    assert torch.equal(G.sample(3, output_type="pt"), G2.sample(3, output_type="pt"))
    x = torch.randn(4, 3, 16, 16)
    assert torch.equal(D(x), D2(x))


def test_slimmed_conv_channels_build_and_round_trip(tmp_path):
    config = tiny_config(conv_channels=[6, 5, 7, 4, 3])
    G = StyleGAN2Generator(config)
    assert [layer.num_filters for layer in G.filter_layers()] == [6, 5, 7, 4, 3]
    G.save_pretrained(tmp_path / "slim")
    G2 = AutoGenerator.from_pretrained(tmp_path / "slim")
    assert G2.config.conv_channels == [6, 5, 7, 4, 3]
    assert torch.equal(G.sample(2, output_type="pt"), G2.sample(2, output_type="pt"))
    with pytest.raises(CheckpointError, match="conv_channels"):
        tiny_config(conv_channels=[4, 4])


def test_filter_layers_address_modulated_convs(tiny_sg2):
    G, _ = tiny_sg2
    layers = G.filter_layers()
    assert [layer.name for layer in layers] == ["conv1"] + [f"convs.{i}" for i in range(4)]
    assert all(layer.weight.shape[layer.out_dim] == layer.num_filters for layer in layers)
    assert all(layer.modulation.weight.shape[0] == layer.weight.shape[layer.in_dim] for layer in layers)
    assert [layer.resolution for layer in layers] == [4, 8, 8, 16, 16]
