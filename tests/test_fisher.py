"""Continuous Fisher tracking agrees with a brute-force per-sample computation."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from helpers import tiny_stylegan2_models

from fsgen_hub.methods.fisher import (
    ContinuousFisher,
    filter_sq_grads,
    per_parameter_fisher,
    per_sample_filter_fisher,
)


def brute_force_stylegan2(G, D, latents):
    """Per sample: autograd.grad of every parameter, then slice each filter's entries by hand."""
    params = dict(G.named_parameters())
    names = ["conv1"] + [f"convs.{i}" for i in range(len(G.convs))]
    totals = {n: 0 for n in names}
    for z in latents:
        loss = F.softplus(-D(G(z[None], noise_mode="const"))).mean()
        grads = dict(zip(params, torch.autograd.grad(loss, list(params.values()), allow_unused=True)))
        for idx, name in enumerate(names):
            w = grads[f"{name}.conv.weight"][0]  # (out, in, k, k)
            per_filter = w.pow(2).sum(dim=(1, 2, 3)) + grads[f"{name}.activate.bias"].pow(2)
            readers = ([names[idx + 1]] if idx + 1 < len(names) else []) + (
                ["to_rgb1" if idx == 0 else f"to_rgbs.{idx // 2 - 1}"] if idx % 2 == 0 else [])
            for reader in readers:
                per_filter = per_filter + grads[f"{reader}.conv.modulation.weight"].pow(2).sum(1)
                per_filter = per_filter + grads[f"{reader}.conv.modulation.bias"].pow(2)
            totals[name] = totals[name] + per_filter / len(latents)
    return [totals[n] for n in names]


def test_continuous_fisher_with_batch_one_equals_per_sample_brute_force():
    G, D = tiny_stylegan2_models(channels=4, mean_latent=0)
    latents = torch.randn(5, 8)
    expected = brute_force_stylegan2(G, D, latents)
    layers = G.filter_layers()
    tracker = ContinuousFisher([l.num_filters for l in layers], mode="mean")
    for z in latents:  # what the training step does: its own backward, then read .grad
        G.zero_grad()
        F.softplus(-D(G(z[None], noise_mode="const"))).mean().backward()
        tracker.update(filter_sq_grads(G, layers))
    for got, want in zip(tracker.values, expected):
        assert torch.allclose(got, want, rtol=1e-4, atol=1e-10)
    on_demand = per_sample_filter_fisher(G, lambda img: F.softplus(-D(img)).mean(), latents, layers)
    for got, want in zip(on_demand, expected):
        assert torch.allclose(got, want, rtol=1e-4, atol=1e-10)


def test_ema_mode_and_state_round_trip():
    tracker = ContinuousFisher([2], mode="ema", decay=0.5)
    tracker.update([torch.tensor([4.0, 0.0])])
    tracker.update([torch.tensor([0.0, 2.0])])
    assert torch.allclose(tracker.values[0], torch.tensor([2.0, 1.0]))
    other = ContinuousFisher([2], mode="ema")
    other.load_state_dict(tracker.state_dict())
    assert torch.equal(other.values[0], tracker.values[0]) and other.count == 2


def test_per_parameter_fisher_matches_manual(tiny_dcgan):
    G, D = tiny_dcgan
    latents = torch.randn(3, 8)
    fisher = per_parameter_fisher(G, lambda img: F.softplus(-D(img)).mean(), latents)
    manual = torch.zeros_like(G.main[0].weight)
    for z in latents:
        G.zero_grad()
        F.softplus(-D(G(z[None]))).mean().backward()
        manual += G.main[0].weight.grad.pow(2) / 3
    assert torch.allclose(fisher["main.0.weight"], manual, rtol=1e-5)
