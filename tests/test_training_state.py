"""A training state small enough to ship beside a source's weights, so a fresh clone can continue its run
(``fsgen_hub.training.checkpointing.export_training_state`` / ``restore_training_state``, used by
``scripts/build_faces64_source.py``)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from test_train_scratch import TINY_STYLEGAN2, train

from fsgen_hub.auto import AutoGenerator
from fsgen_hub.training import checkpointing as ckpt
from fsgen_hub.utils.errors import CheckpointError


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A 4-step tiny StyleGAN2 training run (its checkpoint-4 and its exported model folder) and a straight 6-step one."""
    tmp = tmp_path_factory.mktemp("state")
    assert train(tmp, tmp / "run", "stylegan2", TINY_STYLEGAN2, 4) == 0
    assert train(tmp, tmp / "straight", "stylegan2", TINY_STYLEGAN2, 6) == 0
    return tmp


def test_shipped_state_restores_the_checkpoint_in_half_precision_and_continues_the_run(trained, tmp_path):
    run, checkpoint = trained / "run", trained / "run" / "checkpoint-4"
    state = tmp_path / "state"
    size = ckpt.export_training_state(checkpoint, run, state)
    stored = sum(p.stat().st_size for p in checkpoint.iterdir())
    assert size < 0.5 * stored  # EMA G and D are not stored again; the rest is half precision
    assert not (state / "generator_ema.safetensors").exists() and not (state / "discriminator.safetensors").exists()

    restored = ckpt.restore_training_state(state, run, tmp_path / "continued")
    assert restored.name == "checkpoint-4" and ckpt.is_complete_checkpoint(restored)
    for name in ("generator", "generator_ema", "discriminator"):
        a, b = ckpt._read_tensors(checkpoint / f"{name}.safetensors"), ckpt._read_tensors(restored / f"{name}.safetensors")
        assert set(a) == set(b) and all(b[k].dtype == a[k].dtype for k in a)
        assert all(torch.allclose(a[k], b[k], rtol=1e-3, atol=1e-4) for k in a), name
    for name in ("optimizer_G", "optimizer_D"):
        a, b = ckpt.load_tree(checkpoint, name), ckpt.load_tree(restored, name)
        assert a["param_groups"] == b["param_groups"] and a["state"].keys() == b["state"].keys()
        for index, entry in a["state"].items():
            assert torch.allclose(entry["exp_avg_sq"], b["state"][index]["exp_avg_sq"], rtol=1e-2, atol=0)
            # StyleGAN2's Adam has beta1 = 0: the first moment carries nothing into the next step
            assert not b["state"][index]["exp_avg"].any() and torch.equal(entry["step"], b["state"][index]["step"])
    assert ckpt.load_tree(checkpoint, "loop_state") == ckpt.load_tree(restored, "loop_state")

    # the restored run continues to step 6 and lands next to the straight 6-step run
    for name in ("data",):
        shutil.copytree(trained / name, tmp_path / name)
    assert train(tmp_path, tmp_path / "continued", "stylegan2", TINY_STYLEGAN2, 6, "--resume", "latest") == 0
    # judged on the images (the mapping network's weights are stored at 1/lr_mlp scale, so float16 rounds them by
    # more than a step moves them, in absolute terms): the continuation lands next to the straight run, far from
    # where it started
    z = torch.randn(8, 8, generator=torch.Generator().manual_seed(0))

    def images(folder, name=None):
        G = AutoGenerator.from_pretrained(folder).eval()
        if name:
            G.load_state_dict(ckpt._read_tensors(checkpoint / name))
        with torch.no_grad():
            return G(z, noise_mode="const")

    start, straight, continued = images(run, "generator_ema.safetensors"), images(trained / "straight"), images(tmp_path / "continued")
    moved, gap = float((straight - start).abs().mean()), float((straight - continued).abs().mean())
    assert gap < 0.1 * moved, (gap, moved)


def test_a_state_is_refused_with_other_weights_and_export_refuses_weights_of_another_checkpoint(trained, tmp_path):
    run = trained / "run"
    state = tmp_path / "state"
    ckpt.export_training_state(run / "checkpoint-4", run, state)
    other = tmp_path / "other"
    shutil.copytree(trained / "straight", other, ignore=shutil.ignore_patterns("checkpoint-*", "logs"))
    with pytest.raises(CheckpointError, match="belongs to other weights"):
        ckpt.restore_training_state(state, other, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    with pytest.raises(CheckpointError, match="is not the generator_ema"):
        ckpt.export_training_state(run / "checkpoint-4", other, tmp_path / "state2")
    assert not (tmp_path / "state2").exists()
    # a state whose listed file is missing is incomplete, and a checkpoint is not a shipped state
    (state / "generator.safetensors").unlink()
    with pytest.raises(CheckpointError, match="incomplete"):
        ckpt.restore_training_state(state, run, tmp_path / "out")
    with pytest.raises(CheckpointError, match="not a shipped"):
        ckpt.restore_training_state(run / "checkpoint-4", run, tmp_path / "out")
    assert json.loads((run / "checkpoint-4" / "trainer_state.json").read_text())["format"] == ckpt.CHECKPOINT_FORMAT


@pytest.fixture
def build(trained, tmp_path, monkeypatch):
    """scripts/build_faces64_source.py pointed at a tiny shipped model: the tiny run's exported G (EMA) + D, 4 steps."""
    import importlib.util

    from test_train_scratch import TINY_STYLEGAN2 as config

    spec = importlib.util.spec_from_file_location("build_source", Path(__file__).parents[1] / "scripts" / "build_faces64_source.py")
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    asset = tmp_path / "asset"
    shutil.copytree(trained / "run", asset, ignore=shutil.ignore_patterns("checkpoint-*", "logs", "grids"))
    monkeypatch.setattr(build, "ASSET", asset)
    monkeypatch.setattr(build, "STATE", tmp_path / "no-state")
    monkeypatch.setattr(build, "RESOLUTION", 16)
    monkeypatch.setattr(build, "MODEL_CONFIG", json.loads(config))
    monkeypatch.setattr(build, "TRAIN_ARGS", ["--batch-size", "2", "--r1-every", "2", "--ema-half-life", "2",
                                              "--save-every", "2", "--sample-every", "0", "--seed", "0"])
    return build


def test_build_script_continues_from_the_run_else_the_shipped_state_else_the_shipped_weights(build, trained, tmp_path, monkeypatch):
    asset, data = build.ASSET, trained / "data"

    # weights shipped without a state: G and EMA G are the shipped EMA G, at its step, with a fresh optimiser
    fresh = tmp_path / "fresh"
    assert "shipped weights at step 4" in build.prepare_run(fresh, data, "cpu")
    (checkpoint,) = ckpt.list_checkpoints(fresh)
    shipped = ckpt._read_tensors(asset / "model.safetensors")
    assert checkpoint.name == "checkpoint-4" and ckpt.load_tree(checkpoint, "optimizer_G")["state"] == {}
    assert all(torch.equal(ckpt._read_tensors(checkpoint / "generator.safetensors")[k], v) for k, v in shipped.items())
    assert not list(tmp_path.glob(".fresh*"))  # the throw-away bootstrap run is gone
    build.train_chunk(fresh, data, 2, "cpu")
    assert build.last_step(fresh) == 6

    # a shipped state is restored when the run folder has nothing
    monkeypatch.setattr(build, "STATE", tmp_path / "state")
    ckpt.export_training_state(trained / "run" / "checkpoint-4", asset, tmp_path / "state")
    restored = tmp_path / "restored"
    assert "shipped training state at step 4" in build.prepare_run(restored, data, "cpu")
    # and the run folder's own checkpoints win over both
    assert "own checkpoint at step 6" in build.prepare_run(fresh, data, "cpu")
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "notes.txt").write_text("x")
    with pytest.raises(SystemExit, match="not empty"):
        build.prepare_run(tmp_path / "junk", data, "cpu")


def test_export_adds_up_the_whole_training_and_draws_the_swd_of_every_measured_step(build, trained, tmp_path, monkeypatch):
    from fsgen_hub.utils.io import append_jsonl, read_jsonl

    data, asset = trained / "data", build.ASSET
    shipped = json.loads((asset / "lineage.json").read_text())["training"]
    # the shipped model's own history: an SWD measured at an earlier step, and one of another protocol (not drawn)
    earlier = build.swd_against_photos(AutoGenerator.from_pretrained(asset), data, 8, 2).to_record()
    append_jsonl(asset / "metrics.jsonl", earlier)
    append_jsonl(asset / "metrics.jsonl", {**earlier, "step": 3, "protocol": {**earlier["protocol"], "num_samples": 4}})
    monkeypatch.setattr(build, "STATE", tmp_path / "state")
    run = tmp_path / "run"
    build.prepare_run(run, data, "cpu")
    carried = read_jsonl(run / "chunks.jsonl")
    assert [(c["from_step"], c["to_step"]) for c in carried] == [(0, 4)]  # the training before this run folder
    walls = [build.train_chunk(run, data, 2, "cpu", swd_samples=8) for _ in range(2)]
    chunks = read_jsonl(run / "chunks.jsonl")
    assert [c["to_step"] for c in chunks] == [4, 6, 8] and all(c["swd"] > 0 for c in chunks[1:])

    build.export(run, data, "tiny status", 8)
    lineage = json.loads((asset / "lineage.json").read_text())
    assert lineage["training"]["steps"] == 8 and lineage["status"] == "tiny status"
    assert lineage["training"]["chunks"] == shipped.get("chunks", 1) + 2
    assert lineage["training"]["wall_time_s"] == pytest.approx(shipped["wall_time_s"] + sum(walls), abs=0.2)
    curve = [(r["step"], r["protocol"]["num_samples"]) for r in read_jsonl(asset / "metrics.jsonl") if r["metric"] == "swd"]
    assert curve == [(2, 8), (6, 8), (8, 8)]  # earlier export + this run's chunks + the shipped weights' own
    assert (asset / "swd_curve.png").is_file() and "swd_curve.png" in (asset / "README.md").read_text()
    # the state written beside the new weights restores onto them
    assert ckpt.restore_training_state(tmp_path / "state", asset, tmp_path / "again").name == "checkpoint-8"
