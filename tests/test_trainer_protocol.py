"""Trainer evaluation protocol: --patience stops once --select-best stops improving; the reference is held out."""
from __future__ import annotations

import json

import pytest
import torch
from helpers import save_tiny_dcgan_source, write_random_images

from fsgen_hub.training.arguments import TrainingArguments
from fsgen_hub.training.trainer import AdaptationTrainer
from fsgen_hub.utils.errors import FsgenError


def _args(tmp_path, **overrides) -> TrainingArguments:
    source = save_tiny_dcgan_source(tmp_path / "source")
    shots = write_random_images(tmp_path / "shots", count=10, size=16)
    values = dict(source=str(source), data=str(shots), method="finetune", steps=12, batch_size=4, seed=0,
                  output_dir=str(tmp_path / "run"), save_every=0, sample_every=0, log_every=50, device="cpu",
                  eval_every=1, eval_metrics="swd", eval_num_samples=16, select_best="swd")
    values.update(overrides)
    return TrainingArguments(**values)


def _swd_curve(run) -> list[tuple[int, float]]:
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [(r["step"], r["value"]) for r in records if r["metric"] == "swd"]


def test_patience_stops_at_the_first_evaluation_that_is_patience_evaluations_past_the_best(tmp_path):
    run = AdaptationTrainer(_args(tmp_path, patience=2)).train()
    curve = _swd_curve(run)
    lineage = json.loads((run / "lineage.json").read_text())
    best_step = min(curve, key=lambda p: p[1])[0]
    expected_stop = next((s for s, _ in curve if s - min((p for p in curve if p[0] <= s), key=lambda p: p[1])[0] >= 2), 12)
    assert curve[-1][0] == expected_stop == lineage["training"]["steps_run"]
    assert lineage["training"]["stopped_early"] == (expected_stop < 12)
    assert lineage["best_checkpoint"]["step"] == best_step
    assert [s for s, _ in curve] == list(range(1, expected_stop + 1))  # no evaluation twice at the stop


def test_patience_needs_a_selection_metric(tmp_path):
    with pytest.raises(FsgenError, match="--patience needs --select-best"):
        _args(tmp_path, patience=2, select_best=None).validate()


def test_the_shots_are_dropped_from_the_evaluation_reference(tmp_path):
    shots = write_random_images(tmp_path / "shots", count=10, size=16)
    reference = write_random_images(tmp_path / "reference", count=6, size=16, seed=9)
    for i in range(3):  # three of the shots also sit in the reference folder
        (reference / f"shot{i}.png").write_bytes((shots / f"{i}.png").read_bytes())
    run = AdaptationTrainer(_args(tmp_path, steps=2, eval_reference=str(reference), patience=0)).train()
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert {r["protocol"]["num_reference"] for r in records} == {6}
    assert torch.isfinite(torch.tensor([r["value"] for r in records])).all()
