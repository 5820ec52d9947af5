"""Metrics: Fréchet/KID numerics against references, SWD behaviour, intra-LPIPS clustering, offline errors."""
from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.linalg
import torch
from helpers import fsgen_cli

from fsgen_hub.metrics.base import drop_near_duplicates, evaluate
from fsgen_hub.metrics.diversity import msssim_diversity
from fsgen_hub.metrics.fid_kid import fid, frechet_distance, gaussian_stats, kid_from_features
from fsgen_hub.metrics.intra_lpips import intra_cluster_distance, intra_lpips
from fsgen_hub.metrics.memorization import memorization
from fsgen_hub.metrics.registry import resolve_metric
from fsgen_hub.metrics.swd import swd
from fsgen_hub.utils.errors import MissingWeightsError


def test_frechet_distance_matches_scipy_sqrtm_reference():
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(400, 16, generator=gen, dtype=torch.float64)
    b = torch.randn(300, 16, generator=gen, dtype=torch.float64) * 1.3 + 0.4
    (mu1, s1), (mu2, s2) = gaussian_stats(a), gaussian_stats(b)
    covmean = scipy.linalg.sqrtm(s1.numpy() @ s2.numpy()).real
    reference = float(((mu1 - mu2) ** 2).sum()) + float(np.trace(s1.numpy() + s2.numpy() - 2 * covmean))
    assert abs(frechet_distance(mu1, s1, mu2, s2) - reference) <= 1e-6 * abs(reference)
    # and torchmetrics' own metric on the same features (identity feature extractor)
    from torchmetrics.image.fid import FrechetInceptionDistance

    class Identity(torch.nn.Module):
        num_features = 16

        def forward(self, x):
            return x

    metric = FrechetInceptionDistance(feature=Identity())
    metric.update(a, real=True)
    metric.update(b, real=False)
    assert abs(float(metric.compute()) - reference) <= 1e-6 * abs(reference)


def test_kid_unbiased_estimator_equals_brute_force():
    gen = torch.Generator().manual_seed(1)
    real, fake = torch.randn(12, 5, generator=gen, dtype=torch.float64), torch.randn(12, 5, generator=gen, dtype=torch.float64) + 0.3
    value, _, size = kid_from_features(real, fake, subsets=1, subset_size=100)
    assert size == 12  # subset capped by the 12-image sets instead of failing
    k = lambda x, y: (x @ y / 5 + 1) ** 3  # noqa: E731
    m = 12
    xx = sum(k(real[i], real[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(fake[i], fake[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(real[i], fake[j]) for i in range(m) for j in range(m)) / (m * m)
    assert abs(value - float(xx + yy - 2 * xy)) < 1e-9


def blur(x):
    k = torch.ones(3, 1, 3, 3) / 9
    return torch.nn.functional.conv2d(torch.nn.functional.pad(x, [1, 1, 1, 1], mode="replicate"), k, groups=3)


def test_swd_zero_for_identical_sets_and_monotonic_in_noise_and_blur():
    gen = torch.Generator().manual_seed(2)
    base = torch.rand(24, 3, 32, 32, generator=gen)
    base = blur(base)  # some spatial structure
    same = swd(base, base.clone()).value
    noisy = [swd((base + s * torch.randn(base.shape, generator=gen)).clamp(0, 1), base).value for s in (0.05, 0.15, 0.4)]
    blurred = [swd(x, base).value for x in (blur(base), blur(blur(blur(base))))]
    assert same < 0.05 * noisy[0]
    assert noisy[0] < noisy[1] < noisy[2]
    assert same < blurred[0] < blurred[1]


def test_msssim_diversity_and_memorization():
    gen = torch.Generator().manual_seed(3)
    shots = torch.rand(5, 3, 32, 32, generator=gen)
    copies = shots[torch.randint(0, 5, (40,), generator=gen)]
    noise = torch.rand(40, 3, 32, 32, generator=gen)
    assert memorization(copies, shots=shots).value == 1.0
    assert memorization(noise, shots=shots).value == 0.0
    collapsed = shots[:1].expand(40, -1, -1, -1)
    assert msssim_diversity(collapsed, pairs=50).value < 1e-4 < msssim_diversity(noise, pairs=50).value


def test_intra_cluster_logic_with_a_stand_in_distance():
    shots = torch.tensor([[0.0], [10.0]])
    samples = torch.tensor([[0.0], [1.0], [3.0], [10.0], [11.0]])
    distance = lambda a, b: (a - b).abs().flatten()  # noqa: E731
    value, sizes = intra_cluster_distance(samples, shots, distance)
    # cluster 0: {0,1,3} pairwise mean (1+3+2)/3 = 2; cluster 1: {10,11} -> 1; mean over clusters 1.5
    assert sizes == [3, 2] and value == pytest.approx(1.5)
    value, sizes = intra_cluster_distance(samples[:3], shots, distance)
    assert sizes == [3, 0] and value == pytest.approx(2.0)  # empty clusters are skipped


def test_weight_metrics_fail_clearly_offline(monkeypatch, tmp_path):
    monkeypatch.delenv("FSGEN_INCEPTION_WEIGHTS", raising=False)
    monkeypatch.delenv("FSGEN_LPIPS_BACKBONE", raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    images = torch.rand(4, 3, 32, 32)
    with pytest.raises(MissingWeightsError, match="weights-inception-2015-12-05-6726825d.pth.*FSGEN_INCEPTION_WEIGHTS"):
        fid(images, images)
    with pytest.raises(MissingWeightsError, match="vgg16-397923af.pth.*FSGEN_LPIPS_BACKBONE"):
        intra_lpips(images, shots=images[:2])
    assert swd(images, images).value >= 0  # weight-free metrics still work


def test_intra_lpips_pipeline_runs_with_a_random_backbone():
    gen = torch.Generator().manual_seed(4)
    result = intra_lpips(torch.rand(12, 3, 32, 32, generator=gen), shots=torch.rand(3, 3, 32, 32, generator=gen),
                         random_backbone=True)
    assert "RANDOM" in result.protocol["feature_extractor"] and result.value >= 0


def test_fid_with_a_custom_extractor_names_it():
    class Pool(torch.nn.Module):
        def forward(self, x):
            return torch.nn.functional.adaptive_avg_pool2d(x.float() / 255, 4).flatten(1)

    gen = torch.Generator().manual_seed(5)
    a, b = torch.rand(30, 3, 16, 16, generator=gen), torch.rand(30, 3, 16, 16, generator=gen)
    r = fid(a, b, feature_extractor=Pool())
    assert r.value > 0 and "custom" in r.protocol["feature_extractor"]


def test_drop_near_duplicates():
    ref = torch.rand(6, 3, 32, 32)
    kept = drop_near_duplicates(ref, ref[:2])
    assert len(kept) == 4


def test_names_encode_protocol():
    assert resolve_metric("fid").name == "fid5k" and resolve_metric("kid2k").num_samples == 2000
    with pytest.raises(Exception, match="unknown metric"):
        resolve_metric("inception_score")


def test_evaluate_cli_writes_jsonl(tmp_path, tiny_dcgan):
    from PIL import Image

    G, _ = tiny_dcgan
    G.save_pretrained(tmp_path / "m")
    (tmp_path / "ref").mkdir()
    for i in range(6):
        Image.fromarray((np.random.default_rng(i).random((16, 16, 3)) * 255).astype(np.uint8)).save(tmp_path / "ref" / f"{i}.png")
    result = fsgen_cli("evaluate", tmp_path / "m", "--reference", tmp_path / "ref", "--metrics", "swd,msssim_diversity,memorization,fid",
                       "--num-samples", "64", "--shots", tmp_path / "ref",
                       env={"TORCH_HOME": str(tmp_path / "th"), "FSGEN_INCEPTION_WEIGHTS": None})
    assert result.returncode == 2 and "weights-inception" in result.stderr  # FID missing, the rest computed
    records = [json.loads(line) for line in (tmp_path / "m" / "metrics.jsonl").read_text().splitlines()]
    assert [r["metric"] for r in records] == ["swd", "msssim_diversity", "memorization"]
    assert all(r["protocol"]["num_samples"] == 64 for r in records) and "swd" in result.stdout


def test_evaluate_api_on_a_generator(tiny_dcgan):
    G, _ = tiny_dcgan
    ref = torch.rand(8, 3, 16, 16) * 2 - 1
    results = evaluate(G, ref, ["swd", "msssim_diversity"], num_samples=32)
    assert {r.metric for r in results} == {"swd", "msssim_diversity"} and all(r.protocol["resolution"] == 16 for r in results)


def test_evaluate_fails_on_missing_weights_before_generating_anything(monkeypatch, tmp_path, tiny_dcgan):
    from fsgen_hub.metrics import evaluate

    monkeypatch.delenv("FSGEN_INCEPTION_WEIGHTS", raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    G, _ = tiny_dcgan
    calls = []
    monkeypatch.setattr(type(G), "sample", lambda self, *a, **k: calls.append(1))
    with pytest.raises(MissingWeightsError, match="FSGEN_INCEPTION_WEIGHTS"):
        evaluate(G, torch.rand(4, 3, 16, 16), ["swd", "fid5k"], output_jsonl=tmp_path / "m.jsonl")
    assert calls == [] and not (tmp_path / "m.jsonl").exists()


def test_excluding_the_shots_from_a_reference_made_of_them_is_a_clear_error(tiny_dcgan):
    from fsgen_hub.utils.errors import DataError

    G, _ = tiny_dcgan
    shots = torch.rand(6, 3, 16, 16) * 2 - 1
    others = torch.rand(4, 3, 16, 16) * 2 - 1
    (kept,) = evaluate(G, torch.cat([shots, others]), ["swd"], num_samples=16, exclude_from_reference=shots)
    assert kept.protocol["num_reference"] == 4
    with pytest.raises(DataError, match="matches an excluded"):
        evaluate(G, shots, ["swd"], num_samples=16, exclude_from_reference=shots)
