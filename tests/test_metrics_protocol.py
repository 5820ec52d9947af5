"""Correspondence, calibrated memorisation and collapse: numbers on constructed image sets."""
from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from fsgen_hub.metrics.base import evaluate
from fsgen_hub.metrics.collapse import collapse, effective_modes
from fsgen_hub.metrics.correspondence import correspondence, distance_rank_correlation
from fsgen_hub.metrics.memorization import memorization, memorization_calibrated
from fsgen_hub.utils.errors import FsgenError


def smooth_images(n: int, seed: int, size: int = 32) -> torch.Tensor:
    """Distinct images with layout (random 4x4 colour fields upsampled), in [0, 1]."""
    gen = torch.Generator().manual_seed(seed)
    return F.interpolate(torch.rand(n, 3, 4, 4, generator=gen), size=(size, size), mode="bilinear", align_corners=False)


def noisy(images: torch.Tensor, std: float, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return (images + std * torch.randn(images.shape, generator=gen)).clamp(0, 1)


def test_correspondence_is_one_for_the_same_layout_in_another_style_and_low_when_latents_are_scrambled():
    source = smooth_images(60, seed=0)
    assert distance_rank_correlation(source, source) == pytest.approx(1.0)
    # a "sketch" of each source image: grayscale, inverted, dimmer; the layout is kept, so is the ranking
    sketch = (1 - source.mean(1, keepdim=True).expand_as(source)) * 0.5 + 0.2
    assert distance_rank_correlation(source, sketch) == pytest.approx(1.0, abs=1e-6)
    scrambled = sketch[torch.randperm(60, generator=torch.Generator().manual_seed(1))]
    assert abs(distance_rank_correlation(source, scrambled)) < 0.15
    # partly kept identity lies in between
    partial = noisy(sketch, 0.25, seed=2)
    assert 0.3 < distance_rank_correlation(source, partial) < 0.95
    result = correspondence(source_samples=source, adapted_samples=sketch)
    assert result.metric == "correspondence" and result.value == pytest.approx(1.0, abs=1e-6)


def test_correspondence_of_a_collapsed_model_is_zero_not_nan():
    source = smooth_images(10, seed=0)
    same = source[:1].expand(10, -1, -1, -1)
    assert distance_rank_correlation(source, same) == 0.0


def test_copies_of_the_shots_count_as_memorised_where_the_fixed_threshold_sees_none():
    shots = smooth_images(10, seed=3)
    copies = noisy(shots.repeat(10, 1, 1, 1), 0.07, seed=4)  # RMS ~0.07: above the old fixed 0.05
    share, ratio = memorization_calibrated(copies, shots=shots)
    assert (share.metric, ratio.metric) == ("memorization_calibrated", "memorization_ratio")
    assert share.value == 1.0 and ratio.value < 0.5
    assert memorization(copies, shots=shots).value == 0.0  # the old metric, kept as it was
    novel = smooth_images(100, seed=5)
    share, ratio = memorization_calibrated(novel, shots=shots)
    assert share.value < 0.1 and ratio.value > 0.7


def test_one_repeated_image_is_one_mode_and_no_diversity_left():
    shots = smooth_images(10, seed=3)
    source = smooth_images(40, seed=6)
    repeated = noisy(source[:1].repeat(40, 1, 1, 1), 0.01, seed=7)
    ratio, modes = collapse(repeated, shots=shots, source_samples=source, adapted_samples=repeated)
    assert (ratio.metric, modes.metric) == ("collapse_diversity_ratio", "collapse_modes")
    assert ratio.value < 0.05 and modes.value == pytest.approx(1.0)
    ratio, modes = collapse(source, shots=shots, source_samples=source, adapted_samples=source)
    assert ratio.value == pytest.approx(1.0) and modes.value > 30  # 40 distinct images: about 40 modes
    # four equally used images: four modes
    four = noisy(source[:4].repeat(10, 1, 1, 1), 0.01, seed=8)
    value, clusters = effective_modes(four, threshold=0.1)
    assert clusters == 4 and value == pytest.approx(4.0, rel=1e-6)


def test_source_metrics_through_evaluate_take_the_source_from_the_argument_or_the_lineage(tmp_path, tiny_dcgan):
    G, D = tiny_dcgan
    shots = torch.rand(6, 3, 16, 16) * 2 - 1
    results = {r.metric: r for r in evaluate(G, shots, ["correspondence", "collapse"], num_samples=32, shots=shots,
                                              source=G, paired_latents=20)}
    assert results["correspondence"].value == pytest.approx(1.0)
    assert results["collapse_diversity_ratio"].value == pytest.approx(1.0)
    assert results["correspondence"].protocol["paired_latents"] == 20
    with pytest.raises(FsgenError, match="source generator"):
        evaluate(G, shots, ["correspondence"], num_samples=8, shots=shots)

    G.save_pretrained(tmp_path / "source", discriminator=D)
    other = type(G)(G.config)
    torch.manual_seed(1)
    for p in other.parameters():
        p.data.normal_(0, 0.3)
    other.save_pretrained(tmp_path / "adapted", lineage={"base_model": {"id": str(tmp_path / "source")}})
    (result,) = evaluate(str(tmp_path / "adapted"), shots, ["correspondence"], num_samples=8, shots=shots,
                         paired_latents=20)
    assert result.value < 0.99
    # a source whose weights changed since the adaptation (a zoo id that trained on) is refused, not compared with
    from fsgen_hub.folder import weights_sha256

    for digest, ok in ((weights_sha256(tmp_path / "source"), True), ("0" * 64, False)):
        other.save_pretrained(tmp_path / "pinned", lineage={"base_model": {"id": str(tmp_path / "source"), "sha256": digest}})
        if ok:
            assert evaluate(str(tmp_path / "pinned"), shots, ["correspondence"], num_samples=8, shots=shots,
                            paired_latents=20)[0].value == pytest.approx(result.value)
        else:
            with pytest.raises(FsgenError, match="other weights than the model was adapted from"):
                evaluate(str(tmp_path / "pinned"), shots, ["correspondence"], num_samples=8, shots=shots)
    # metrics.jsonl is published with the model: local folders appear by name, never by this machine's path
    record = json.loads((tmp_path / "adapted" / "metrics.jsonl").read_text().splitlines()[-1])
    assert record["model"] == "adapted" and record["protocol"]["source"] == "source"
    assert str(tmp_path) not in json.dumps(record)


def test_evaluate_cli_takes_the_source_explicitly(tmp_path, tiny_dcgan):
    import json
    import os
    import subprocess
    import sys

    from helpers import write_random_images

    G, _ = tiny_dcgan
    G.save_pretrained(tmp_path / "m")  # no lineage: the source must be given
    shots = write_random_images(tmp_path / "shots", count=6, size=16)
    argv = [sys.executable, "-m", "fsgen_hub", "evaluate", str(tmp_path / "m"), "--reference", str(shots),
            "--metrics", "correspondence,memorization_calibrated", "--num-samples", "16", "--shots", str(shots)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    missing = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=300)
    assert missing.returncode == 2 and "pass the source" in missing.stderr.strip().splitlines()[-1]
    given = subprocess.run(argv + ["--source", str(tmp_path / "m")], capture_output=True, text=True, env=env, timeout=300)
    assert given.returncode == 0, given.stderr[-2000:]
    records = [json.loads(line) for line in (tmp_path / "m" / "metrics.jsonl").read_text().splitlines()]
    assert [r["metric"] for r in records] == ["correspondence", "memorization_calibrated", "memorization_ratio"]
    assert records[0]["value"] == pytest.approx(1.0)  # the model against itself
