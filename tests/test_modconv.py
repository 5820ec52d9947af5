"""The fast StyleGAN2 paths equal the reference ones: shared-kernel vs grouped modulated convolution, and the
copy-free FIR resampling vs its step-by-step definition (forward and gradients, tiny shapes)."""
from __future__ import annotations

import pytest
import torch

from fsgen_hub.losses import r1_penalty
from fsgen_hub.models.ops import make_kernel, upfirdn2d, upfirdn2d_reference
from fsgen_hub.models.stylegan2 import (
    ModulatedConv2d,
    StyleGAN2Config,
    StyleGAN2Discriminator,
    StyleGAN2Generator,
    set_modconv_implementation,
)


def _outputs_and_grads(conv: ModulatedConv2d, implementation: str, x: torch.Tensor, w: torch.Tensor, probe: torch.Tensor):
    conv.implementation = implementation
    conv.zero_grad(set_to_none=True)
    x, w = x.clone().requires_grad_(True), w.clone().requires_grad_(True)
    out = conv(x, w)
    (out * probe).sum().backward()  # a random probe so that every output element's gradient path counts
    grads = {name: p.grad.clone() for name, p in conv.named_parameters()}
    return out.detach(), grads, x.grad, w.grad


@pytest.mark.parametrize("kernel_size,upsample,demodulate", [(3, False, True), (3, True, True), (3, False, False),
                                                              (3, True, False), (1, False, False)])
def test_shared_modconv_equals_grouped_forward_and_gradients(kernel_size, upsample, demodulate):
    torch.manual_seed(0)
    conv = ModulatedConv2d(5, 6, kernel_size, style_dim=7, demodulate=demodulate, upsample=upsample)
    with torch.no_grad():
        conv.modulation.bias.normal_()  # styles far from 1, of both signs: a wrong axis would show
    x, w = torch.randn(3, 5, 6, 6), torch.randn(3, 7)
    size = 12 if upsample else 6
    probe = torch.randn(3, 6, size, size)
    ref_out, ref_grads, ref_gx, ref_gw = _outputs_and_grads(conv, "grouped", x, w, probe)
    out, grads, gx, gw = _outputs_and_grads(conv, "shared", x, w, probe)
    assert out.shape == ref_out.shape == (3, 6, size, size)
    torch.testing.assert_close(out, ref_out, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(gx, ref_gx, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(gw, ref_gw, rtol=1e-5, atol=1e-5)
    assert set(grads) == {"weight", "modulation.weight", "modulation.bias"}
    for name in grads:
        torch.testing.assert_close(grads[name], ref_grads[name], rtol=1e-5, atol=1e-5, msg=name)


def test_demodulation_normalises_each_output_channel():
    """Demodulated: each sample's effective kernel has unit norm per output channel (checked on the shared path)."""
    torch.manual_seed(1)
    conv = ModulatedConv2d(4, 3, 1, style_dim=5, demodulate=True)
    conv.implementation = "shared"
    w = torch.randn(2, 5)
    x = torch.zeros(2, 4, 1, 1)
    rows = []
    for i in range(4):  # the response to a unit input in channel i is column i of the effective kernel
        x_i = x.clone()
        x_i[:, i] = 1
        rows.append(conv(x_i, w)[:, :, 0, 0])
    kernel = torch.stack(rows, -1)  # (batch, out, in)
    torch.testing.assert_close(kernel.norm(dim=2), torch.ones(2, 3), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("up,down,pad,taps", [(2, 1, (2, 1), [1, 3, 3, 1]), (1, 1, (1, 1), [1, 3, 3, 1]),
                                              (1, 1, (2, 2), [1, 3, 3, 1]), (1, 2, (2, 2), [1, 3, 3, 1]),
                                              (1, 1, (2, 1), [1, 3, 3, 1]), (2, 1, (1, 1), [1, 2, 1]),
                                              (2, 1, (0, 0), [1, 3, 3, 1]), (1, 1, (-1, 0), [1, 2, 1]),
                                              (2, 2, (1, 1), [1, 3, 3, 1])])
def test_fast_upfirdn2d_equals_step_by_step_definition(up, down, pad, taps):
    torch.manual_seed(0)
    kernel = make_kernel(taps) * torch.linspace(0.5, 1.5, len(taps))[None, :]  # asymmetric: a flip would show
    x = torch.randn(2, 3, 7, 7, requires_grad=True)
    out, ref = upfirdn2d(x, kernel, up, down, pad), upfirdn2d_reference(x, kernel, up, down, pad)
    assert out.shape == ref.shape
    torch.testing.assert_close(out, ref, rtol=1e-6, atol=1e-6)
    probe = torch.randn_like(ref)
    (grad,) = torch.autograd.grad((out * probe).sum(), x)
    (ref_grad,) = torch.autograd.grad((ref * probe).sum(), x)
    torch.testing.assert_close(grad, ref_grad, rtol=1e-6, atol=1e-6)


def _tiny_config():
    return StyleGAN2Config(resolution=16, style_dim=8, n_mlp=1, channels={"4": 6, "8": 5, "16": 4})


def test_generator_training_step_equal_across_implementations():
    """A whole G + D step (adversarial loss and R1's double backward) gives the same gradients either way."""
    torch.manual_seed(0)
    G, D = StyleGAN2Generator(_tiny_config()), StyleGAN2Discriminator(_tiny_config())
    z, real = torch.randn(4, 8), torch.randn(4, 3, 16, 16)
    results = {}
    for implementation in ("grouped", "shared"):
        set_modconv_implementation(G, implementation)
        G.zero_grad(set_to_none=True), D.zero_grad(set_to_none=True)
        fake = G(z, noise_mode="const")
        real_r1 = real.clone().requires_grad_(True)
        loss = torch.nn.functional.softplus(-D(fake)).mean() + r1_penalty(D(real_r1), real_r1)
        loss.backward()
        results[implementation] = (fake.detach(), {n: p.grad.clone() for n, p in [*G.named_parameters(), *D.named_parameters()]
                                                   if p.grad is not None})
    (ref_fake, ref_grads), (fake, grads) = results["grouped"], results["shared"]
    torch.testing.assert_close(fake, ref_fake, rtol=1e-5, atol=1e-5)
    assert grads.keys() == ref_grads.keys() and any(n.startswith("convs.") for n in grads)
    for name in grads:
        torch.testing.assert_close(grads[name], ref_grads[name], rtol=1e-4, atol=1e-5, msg=name)


def test_auto_choice_and_unknown_names():
    torch.manual_seed(0)
    G = StyleGAN2Generator(_tiny_config())
    used = []
    conv = G.convs[0].conv
    original = conv._forward_shared
    conv._forward_shared = lambda x, s: used.append("shared") or original(x, s)
    G(torch.randn(2, 8))  # a batch: the 3x3 convs take the shared kernel
    assert used == ["shared"]
    G(torch.randn(1, 8))  # a single sample is one dense convolution either way: grouped, no extra scaling
    assert used == ["shared"]
    assert all(m.conv.resolved_implementation(torch.zeros(2, 1, 1, 1)) == "grouped" for m in [G.to_rgb1, *G.to_rgbs])
    with pytest.raises(ValueError, match="grouped"):
        set_modconv_implementation(G, "fused")


def test_discriminator_channels_last_changes_nothing_but_layout():
    torch.manual_seed(0)
    D = StyleGAN2Discriminator(_tiny_config())
    images = torch.randn(4, 3, 16, 16)
    results = {}
    for layout in (False, True):
        D.channels_last = layout
        D.zero_grad(set_to_none=True)
        real = images.clone().requires_grad_(True)
        logits = D(real)
        r1 = r1_penalty(logits, real)  # double backward through the NHWC convolutions
        (logits.sum() + r1).backward()
        results[layout] = (logits.detach(), {n: p.grad.clone() for n, p in D.named_parameters()})
    torch.testing.assert_close(results[True][0], results[False][0], rtol=1e-5, atol=1e-5)
    for name, grad in results[False][1].items():
        torch.testing.assert_close(results[True][1][name], grad, rtol=1e-4, atol=1e-5, msg=name)


def test_frozen_outside_skips_untrained_discriminator_gradients_and_restores_flags():
    from fsgen_hub.training.trainer import _frozen_outside

    torch.manual_seed(0)
    G, D = StyleGAN2Generator(_tiny_config()), StyleGAN2Discriminator(_tiny_config())
    D.final_linear.requires_grad_(False)  # a method froze this (FreezeD-style): it must stay frozen after
    head = D.convs[0][0].weight  # a D parameter the G optimiser trains must keep its gradient
    opt_g = torch.optim.Adam([*G.parameters(), head])
    with _frozen_outside(D, opt_g):
        D(G(torch.randn(2, 8))).sum().backward()
    assert head.grad is not None and all(p.grad is not None for p in G.parameters() if p.requires_grad)
    assert all(p.grad is None for n, p in D.named_parameters() if p is not head)
    assert all(p.requires_grad for n, p in D.named_parameters() if not n.startswith("final_linear"))
    assert not any(p.requires_grad for p in D.final_linear.parameters())
