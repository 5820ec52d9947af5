"""AdaFM and BSA: identity at init, exact baking (axes!), only the method's tensors train, bad inputs."""
from __future__ import annotations

import copy

import pytest
import torch
from helpers import run as adapt
from helpers import tiny_stylegan2_models, write_random_images

from fsgen_hub.methods.base import get_method
from fsgen_hub.methods.delta import adapter_tensors, bake, plain_state
from fsgen_hub.training.arguments import TrainingArguments
from fsgen_hub.training.trainer import AdaptationTrainer
from fsgen_hub.utils.errors import FsgenError, MissingWeightsError


def tiny_stylegan2():
    return tiny_stylegan2_models(channels=4)


@pytest.fixture
def setup(tmp_path, tiny_dcgan):
    G, D = tiny_dcgan
    G.save_pretrained(tmp_path / "dcgan", discriminator=D)
    G.save_pretrained(tmp_path / "dcgan_no_d")
    S, SD = tiny_stylegan2()
    S.save_pretrained(tmp_path / "stylegan2", discriminator=SD)
    write_random_images(tmp_path / "data")
    return tmp_path


def run(tmp, source, method, options, steps=4, **kw):
    return adapt(tmp / source, tmp / "data", tmp / f"{source}-{method}", method, options, steps=steps, **kw)


def outputs(G, z):
    return G.eval()(z, noise_mode="const")


@pytest.mark.parametrize("name", ["adafm", "bsa"])
@pytest.mark.parametrize("arch", ["dcgan", "stylegan2"])
def test_identity_at_init_and_exact_bake(name, arch, tiny_dcgan):
    base = (tiny_dcgan[0] if arch == "dcgan" else tiny_stylegan2()[0]).eval()
    G = copy.deepcopy(base)
    get_method(name).attach(G)
    z = torch.randn(3, base.z_dim, generator=torch.Generator().manual_seed(0))
    assert torch.equal(outputs(G, z), outputs(base, z))  # gamma=1, beta=0 / scale=1, shift=0: the base exactly
    with torch.no_grad():
        for p in adapter_tensors(G).values():
            p.add_(0.2 * torch.randn_like(p))
    modulated = outputs(G, z)
    baked = bake(G)
    assert type(baked) is type(base) and list(baked.state_dict()) == list(base.state_dict())  # a plain generator
    assert (outputs(baked, z) - modulated).abs().max() <= 1e-6
    assert (modulated - outputs(base, z)).abs().max() > 1e-4  # the adapter does something
    assert torch.equal(outputs(G, z), modulated)  # baking left the parametrized model working


def test_adafm_axes_dcgan_transposed_kernel(tiny_dcgan):
    # ConvTranspose2d weights are (in, out, k, k) while gamma/beta are (out, in): W'[i, o] = g[o, i] * W[i, o] + b[o, i]
    base = tiny_dcgan[0]
    G = copy.deepcopy(base)
    get_method("adafm", {"layers": ["main.3"]}).attach(G)
    tensors = adapter_tensors(G)
    gamma, beta = tensors["main.3.gamma"], tensors["main.3.beta"]
    assert gamma.shape == (4, 8)  # out 4, in 8
    with torch.no_grad():
        gamma.copy_(torch.arange(32.0).view(4, 8))
        beta.copy_(-torch.arange(32.0).view(4, 8) / 10)
    W, Wp = base.main[3].weight, bake(G).main[3].weight
    for i in range(8):
        for o in range(4):
            assert torch.equal(Wp[i, o], gamma[o, i] * W[i, o] + beta[o, i])


def test_adafm_axes_stylegan2():
    base = tiny_stylegan2()[0]
    G = copy.deepcopy(base)
    get_method("adafm", {"layers": ["convs.0"]}).attach(G)
    t = adapter_tensors(G)
    with torch.no_grad():
        t["convs.0.gamma"].copy_(torch.rand(4, 4) + 0.5)
        t["convs.0.beta"].copy_(torch.rand(4, 4))
    W, Wp = base.convs[0].conv.weight, bake(G).convs[0].conv.weight  # (1, out, in, k, k)
    expected = W * t["convs.0.gamma"][None, :, :, None, None] + t["convs.0.beta"][None, :, :, None, None]
    assert torch.equal(Wp, expected)


def test_bsa_dcgan_scales_and_shifts_the_normalised_features(tiny_dcgan):
    # BSA's DCGAN parametrization must equal s * BN(x) + t on the BN output (BN in eval: source statistics)
    base = tiny_dcgan[0].eval()
    G = copy.deepcopy(base)
    get_method("bsa", {"layers": ["main.3"]}).attach(G)
    t = adapter_tensors(G)
    with torch.no_grad():
        t["main.3.scale"].copy_(torch.tensor([0.5, 2.0, -1.0, 1.5]))
        t["main.3.shift"].copy_(torch.tensor([0.1, -0.2, 0.3, 0.0]))
    hooked = copy.deepcopy(base)
    hooked.main[4].register_forward_hook(lambda m, i, out: out * t["main.3.scale"].view(1, -1, 1, 1)
                                         + t["main.3.shift"].view(1, -1, 1, 1))
    z = torch.randn(4, 8, generator=torch.Generator().manual_seed(1))
    assert (outputs(G, z) - outputs(hooked, z)).abs().max() <= 1e-6


def test_adafm_training_moves_only_gamma_beta_and_the_trained_block(setup):
    trainer, _ = run(setup, "dcgan", "adafm", {})  # default split: main.0 (+BN main.1) trained, main.3 modulated
    method, source = trainer.method, plain_state(_load(setup / "dcgan"))
    G = method.model
    assert method.modulated == ["main.3"] and set(method.trained) == {"main.0.weight", "main.1.weight", "main.1.bias"}
    original = G.main[3].parametrizations.weight.original
    assert not original.requires_grad and original.grad is None  # gradients never reach W
    params = dict(plain_state(G))
    for key in ("main.3.weight", "main.4.weight", "main.4.bias", "main.6.weight"):
        assert torch.equal(params[key], source[key]), key  # frozen base weights: bit-identical
    assert not torch.equal(params["main.0.weight"], source["main.0.weight"])  # the high-level block trains
    t = adapter_tensors(G)
    assert not torch.equal(t["main.3.gamma"], torch.ones_like(t["main.3.gamma"]))
    assert not torch.equal(t["main.3.beta"], torch.zeros_like(t["main.3.beta"]))


def test_adafm_stylegan2_gamma_beta_only(setup):
    trainer, _ = run(setup, "stylegan2", "adafm", {"train": [], "layers": ["convs.*"]}, steps=3)
    G, source = trainer.method.model, plain_state(_load(setup / "stylegan2"))
    trained = [n for n, p in G.named_parameters() if p.requires_grad]
    assert trained and all(n.endswith((".gamma", ".beta")) for n in trained)
    for key, value in plain_state(G).items():
        assert torch.equal(value, source[key]), key  # every base tensor, buffers included
    assert any(not torch.equal(p, torch.ones_like(p)) for k, p in adapter_tensors(G).items() if k.endswith("gamma"))


def test_bsa_training_moves_only_scale_shift_and_latents(setup):
    trainer, out = run(setup, "dcgan", "bsa", {"lr": 0.02}, steps=8)
    method, source = trainer.method, plain_state(_load(setup / "dcgan"))
    for key, value in plain_state(method.model).items():
        assert torch.equal(value, source[key]), key  # BN runs on the source statistics: buffers unchanged too
    assert [n for n, p in method.model.named_parameters() if p.requires_grad] == [
        n for n in dict(method.model.named_parameters()) if n.endswith((".scale", ".shift"))]
    init = torch.randn(4, 8, generator=torch.Generator().manual_seed(1)) * method.config.latent_init_std
    assert not torch.allclose(method.latents.detach().cpu(), init)
    from fsgen_hub.utils.io import read_jsonl

    log = read_jsonl(out / "logs" / "train_log.jsonl")
    assert {"loss_bsa_l1", "loss_bsa_perceptual", "loss_bsa_reg", "loss_bsa_prior"} <= set(log[0])
    assert "loss_d" not in log[0] and "loss_g_adv" not in log[0]  # no discriminator, no adversarial loss
    assert log[-1]["loss_bsa_l1"] < log[0]["loss_bsa_l1"]  # the reconstruction improves
    assert (out / "bsa_latents.safetensors").is_file() and (out / "bsa_reconstructions.png").is_file()


def test_bsa_resume_repeats_the_uninterrupted_run(setup):
    # the latents live in the method (its state_dict), scale/shift in the parametrized G: both must survive resume
    import shutil

    from fsgen_hub.auto import AutoGenerator

    _, straight = run(setup, "dcgan", "bsa", {}, steps=4, save_every=2)
    shutil.copytree(straight / "checkpoint-2", setup / "resumed" / "checkpoint-2")
    args = TrainingArguments(source=str(setup / "dcgan"), data=str(setup / "data"), shots=4, method="bsa", steps=4,
                             batch_size=2, output_dir=str(setup / "resumed"), save_every=2, sample_every=0,
                             device="cpu", seed=1, resume="latest")
    resumed = AdaptationTrainer(args).train()
    for folder in ("", "adapter"):
        a, b = AutoGenerator.from_pretrained(straight / folder), AutoGenerator.from_pretrained(resumed / folder)
        assert all(torch.equal(v, b.state_dict()[k]) for k, v in a.state_dict().items())
    from safetensors.torch import load_file

    assert torch.equal(load_file(str(straight / "bsa_latents.safetensors"))["latents"],
                       load_file(str(resumed / "bsa_latents.safetensors"))["latents"])


def _load(path):
    from fsgen_hub.auto import AutoGenerator

    return AutoGenerator.from_pretrained(path)


# ----------------------------------------------------------------------------- bad inputs
def test_layer_pattern_matching_nothing_is_one_line_error(tiny_dcgan):
    for name in ("adafm", "bsa"):
        with pytest.raises(FsgenError, match="no generator filter layer matches") as info:
            get_method(name, {"layers": ["convs.*"]}).attach(copy.deepcopy(tiny_dcgan[0]))
        assert "\n" not in str(info.value) and "main.0" in str(info.value)  # lists what is available


def test_bad_options_fail_before_training(setup):
    with pytest.raises(FsgenError, match="perceptual must be one of"):
        get_method("bsa", {"perceptual": "vgg"})
    with pytest.raises(FsgenError, match="train pattern 'nothing.*' matches no"):
        run(setup, "dcgan", "adafm", {"train": ["nothing.*"]}, steps=1)
    with pytest.raises(FsgenError, match="needs the source model's discriminator"):
        run(setup, "dcgan_no_d", "bsa", {"perceptual": "d_features"}, steps=1)


def test_lpips_vgg_without_backbone_weights_names_the_file(setup, monkeypatch, tmp_path):
    monkeypatch.delenv("FSGEN_LPIPS_BACKBONE", raising=False)
    old = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / "empty_torch_hub"))
    try:
        with pytest.raises(MissingWeightsError, match="vgg16-397923af.pth") as info:
            run(setup, "dcgan", "bsa", {"perceptual": "lpips_vgg"}, steps=1)
    finally:
        torch.hub.set_dir(old)
    assert "FSGEN_LPIPS_BACKBONE" in str(info.value) and "\n" not in str(info.value)
