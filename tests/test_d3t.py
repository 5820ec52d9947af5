"""D3T-GAN: inversion lowers the reconstruction error, MMD reference values, loss keys logged, fresh-D fallback."""
from __future__ import annotations

import json
import math

import pytest
import torch
from helpers import run as adapt
from helpers import tiny_stylegan2_models, write_random_images

from fsgen_hub.methods.base import get_method
from fsgen_hub.methods.d3t import invert_images, mmd2
from fsgen_hub.utils.errors import FsgenError
from fsgen_hub.utils.io import read_jsonl

G_KEYS = {"loss_g_d3t_rec", "loss_g_d3t_mmd"}
D_KEYS = {"loss_d_distill_real", "loss_d_distill_fake"}


@pytest.fixture
def setup(tmp_path, tiny_dcgan):
    G, D = tiny_dcgan
    G.save_pretrained(tmp_path / "src", discriminator=D)
    G.save_pretrained(tmp_path / "src_no_d")
    write_random_images(tmp_path / "data")
    return tmp_path


def run(tmp, source, options, steps=3):
    options = {"inversion_steps": 10, "inversion_candidates": 8, **options}
    return adapt(tmp / source, tmp / "data", tmp / f"run-{source}", "d3t", options, steps=steps)


def test_inversion_recovers_images_the_source_can_make(tiny_dcgan):
    # targets the generator can produce exactly: the inversion must get much closer than its starting point
    G = tiny_dcgan[0].eval()
    with torch.no_grad():
        targets = G(torch.randn(3, 8, generator=torch.Generator().manual_seed(5)))
    latents, before, after = invert_images(G, targets, steps=15, lr=0.1, candidates=8)
    assert latents.shape == (3, 8)
    assert after.mean() < 0.5 * before.mean()


@pytest.mark.parametrize("space", ["w+", "w"])
def test_inversion_stylegan2_latent_spaces(space):
    G = tiny_stylegan2_models(channels=4)[0].eval()
    with torch.no_grad():
        targets = G(torch.randn(2, 8, generator=torch.Generator().manual_seed(5)), noise_mode="const")
    latents, before, after = invert_images(G, targets, steps=8, lr=0.05, space=space)
    assert latents.shape == ((2, G.n_latent, 8) if space == "w+" else (2, 8))
    assert after.mean() < 0.7 * before.mean()


def test_mmd_reference_values():
    x, y = torch.zeros(1, 1), torch.ones(1, 1)
    # one point each, dim 1, bandwidth 1: k(x,x) = k(y,y) = 1, k(x,y) = exp(-1/2)
    assert math.isclose(mmd2(x, y, [1.0]).item(), 2 - 2 * math.exp(-0.5), rel_tol=1e-6)
    # two bandwidths add their kernels: 2·(2 − e^{-1/2} − e^{-1/8})
    assert math.isclose(mmd2(x, y, [1.0, 2.0]).item(), 2 * (2 - math.exp(-0.5) - math.exp(-0.125)), rel_tol=1e-6)
    a = torch.randn(16, 5, generator=torch.Generator().manual_seed(0))
    assert abs(mmd2(a, a.clone(), [0.5, 1.0])) < 1e-6
    assert mmd2(a, a + 1.0, [1.0]) > mmd2(a, a + 0.1, [1.0]) > 0


def test_d3t_run_logs_every_term_and_the_inversion(setup):
    trainer, out = run(setup, "src", {})
    log = read_jsonl(out / "logs" / "train_log.jsonl")
    assert len(log) == 3 and all(G_KEYS | D_KEYS <= set(record) for record in log)
    # at step 0 the target D equals the source D (same mode, same inputs): distillation is exactly zero
    assert log[0]["loss_d_distill_real"] == 0 and log[0]["loss_d_distill_fake"] == 0
    assert any(r["loss_d_distill_real"] > 0 for r in log[1:])  # and becomes non-zero once D moves
    report = json.loads((out / "d3t.json").read_text())
    assert report["distillation"] == "enabled" and report["mmd_features"] == "d_features"
    assert report["inversion"]["mean_l1_after"] <= report["inversion"]["mean_l1_before"]
    assert len(report["inversion"]["l1_after"]) == 4
    lineage = json.loads((out / "lineage.json").read_text())
    assert lineage["method"]["name"] == "d3t" and lineage["artifacts"]["d3t_inversion"] == "d3t_inversion.png"
    assert trainer.method.state_dict()["latents"].shape == (4, 8)


def test_d3t_without_source_discriminator_disables_distillation(setup, caplog):
    with caplog.at_level("WARNING"):
        trainer, out = run(setup, "src_no_d", {}, steps=2)
    log = read_jsonl(out / "logs" / "train_log.jsonl")
    assert G_KEYS <= set(log[0]) and not (D_KEYS & set(log[0]))
    report = json.loads((out / "d3t.json").read_text())
    assert report["distillation"] == "disabled" and report["mmd_features"] == "pixels"
    assert "no discriminator" in report["notes"][0] and "distillation (c) disabled" in caplog.text
    assert trainer.method.state_dict()["distill"] is False


def test_d3t_bad_options():
    for options, message in [({"latent_space": "s"}, "latent_space"), ({"mmd_bandwidths": []}, "mmd_bandwidths"),
                             ({"distill_distance": "l1"}, "distill_distance"), ({"inversion_lr": 0}, "inversion_lr")]:
        with pytest.raises(FsgenError, match=message) as info:
            get_method("d3t", options)
        assert "\n" not in str(info.value)
