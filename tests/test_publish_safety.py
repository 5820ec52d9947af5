"""What `fsgen push` publishes: an allow-list of what a model folder is, never a link out of it (issue 16 item 6)."""
from __future__ import annotations

import json
import os

import pytest
from PIL import Image

from fsgen_hub.publish import publishable_files


@pytest.fixture
def run_folder(tmp_path, tiny_dcgan):
    G, D = tiny_dcgan
    folder = tmp_path / "run"
    lineage = {"kind": "adapted", "base_model": {"id": "fsgen/dcgan-digiface64"}, "method": {"name": "d3t"},
               "artifacts": {"samples": "samples.png", "d3t": "d3t.json", "escape": "../outside.json"}}
    G.save_pretrained(folder, discriminator=D, lineage=lineage)
    Image.new("RGB", (8, 8)).save(folder / "samples.png")
    for name in ("README.md", "metrics.jsonl", "pruning.json", "d3t.json"):
        (folder / name).write_text("{}\n")
    (folder / "adapter").mkdir()
    for name in ("adapter_config.json", "adapter_model.safetensors"):
        (folder / "adapter" / name).write_text("{}")
    return folder


def test_only_the_model_folder_allow_list_is_published(run_folder, tmp_path):
    outside = tmp_path / "private"
    outside.mkdir()
    (outside / "id_rsa").write_text("secret key")
    (outside / "adapter_config.json").write_text("{}")
    (tmp_path / "outside.json").write_text("{}")
    # what a run folder also holds, or what a user drops into it: none of it is part of the model
    for rel in ["checkpoint_5/model.safetensors", "checkpoint-3/generator.safetensors",
                "discriminator/checkpoint-2/trainer_state.json", "tb/events.out.tfevents.1", "wandb/run-1/config.yaml",
                "logs/train_log.jsonl", "grids/step_000000.png", "model.pt", "notes.txt", ".env", "discriminator/d.pt"]:
        (run_folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (run_folder / rel).write_text("x")
    # links out of the folder, named like files that are published
    os.symlink(outside / "id_rsa", run_folder / "shots.png")
    os.symlink(outside / "id_rsa", run_folder / "discriminator" / "config.json.bak")
    os.replace(run_folder / "metrics.jsonl", tmp_path / "metrics.jsonl")
    os.symlink(tmp_path / "metrics.jsonl", run_folder / "metrics.jsonl")
    os.rename(run_folder / "adapter", tmp_path / "adapter_elsewhere")
    os.symlink(outside, run_folder / "adapter")  # a linked folder
    published = {rel for rel, _ in publishable_files(run_folder)}
    assert published == {"README.md", "config.json", "model.safetensors", "lineage.json", "pruning.json",
                         "samples.png", "d3t.json", "discriminator/config.json", "discriminator/model.safetensors"}


def test_published_paths_stay_inside_the_folder(run_folder):
    files = publishable_files(run_folder)
    assert {rel for rel, _ in files} >= {"adapter/adapter_config.json", "adapter/adapter_model.safetensors",
                                         "metrics.jsonl"}
    root = run_folder.resolve()
    assert all(path.resolve().is_relative_to(root) and not path.is_symlink() for _, path in files)
    assert json.loads((run_folder / "lineage.json").read_text())["artifacts"]["escape"] not in {r for r, _ in files}
