"""Slow, real-data runs (`make test-slow`): the main command from a fresh install, and DigiFace → sketches."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]


def test_fresh_install_and_shortened_main_command_work_offline(tmp_path):
    """README: `pip install .` into a new venv, then `fsgen adapt` (shortened) with the hub offline."""
    clone = tmp_path / "clone"
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    for name in files:
        (clone / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, clone / name)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "pip"), "install", "--quiet", str(clone)], check=True, timeout=1800)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "FSGEN_HOME": str(tmp_path / "home"), "HOME": str(tmp_path)}
    run = subprocess.run([str(venv / "bin" / "fsgen"), "adapt", "--steps", "20", "--eval-num-samples", "64"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=1200)
    assert run.returncode == 0, run.stderr[-2000:]
    out = tmp_path / "runs" / "finetune-emoji"
    for name in ["model.safetensors", "config.json", "discriminator/model.safetensors", "lineage.json", "metrics.jsonl",
                 "samples.png", "source_vs_adapted.png", "shots.png", "logs/train_log.jsonl"]:
        assert (out / name).is_file(), name
    assert "model folder: runs/finetune-emoji" in run.stdout and "from_pretrained('runs/finetune-emoji')" in run.stdout
    metrics = {json.loads(line)["metric"] for line in (out / "metrics.jsonl").read_text().splitlines()}
    assert {"swd", "msssim_diversity", "memorization"} <= metrics


def test_digiface_to_sketches_lowers_swd_and_records_a_complete_lineage(tmp_path, shared_dir):
    from fsgen_hub.auto import AutoGenerator
    from fsgen_hub.metrics import evaluate
    from fsgen_hub.training.arguments import TrainingArguments
    from fsgen_hub.training.trainer import AdaptationTrainer
    from fsgen_hub.zoo import DIGIFACE_SOURCE

    shots, reference = shared_dir / "data/tenshot/sketches", shared_dir / "data/cufs_sketches"
    args = TrainingArguments(source=DIGIFACE_SOURCE, data=str(shots), method="dap", steps=300,
                             output_dir=str(tmp_path / "run"), seed=0)
    out = AdaptationTrainer(args).train()

    def swd(model):
        (result,) = evaluate(model, reference, ["swd"], num_samples=500, seed=7, exclude_from_reference=shots)
        return result.value

    before, after = swd(AutoGenerator.from_pretrained(DIGIFACE_SOURCE)), swd(AutoGenerator.from_pretrained(out))
    assert after < before, (before, after)
    lineage = json.loads((out / "lineage.json").read_text())
    assert lineage["data"]["shots"] == 10 and len(lineage["data"]["files"]) == 10
    assert all(len(f["sha256"]) == 64 for f in lineage["data"]["files"])
    assert lineage["training"]["discriminator"] == "fresh" and lineage["training"]["steps"] == 300
    assert lineage["method"]["name"] == "dap" and lineage["base_model"]["id"] == DIGIFACE_SOURCE
    log = (out / "logs" / "train_log.jsonl").read_text().splitlines()
    assert json.loads(log[-1])["step"] == 299
    assert len(list((out / "grids").glob("step_*.png"))) >= 3
