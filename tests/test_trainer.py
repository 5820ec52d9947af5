"""The adaptation trainer on a tiny DCGAN: outputs, resume equality, multi-process, bad inputs."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from PIL import Image

from fsgen_hub.auto import AutoGenerator
from fsgen_hub.training.arguments import TrainingArguments
from fsgen_hub.training.trainer import AdaptationTrainer
from fsgen_hub.utils.errors import DataError, FsgenError
from fsgen_hub.utils.io import read_jsonl


@pytest.fixture
def source_and_data(tmp_path, tiny_dcgan):
    G, D = tiny_dcgan
    G.save_pretrained(tmp_path / "source", discriminator=D)
    data = tmp_path / "data"
    data.mkdir()
    gen = torch.Generator().manual_seed(1)
    for i in range(6):
        array = (torch.rand(20, 24, 3, generator=gen) * 255).byte().numpy()
        Image.fromarray(array).save(data / f"img{i}.png")
    return str(tmp_path / "source"), str(data)


def quick_args(source, data, out, **kw):
    defaults = dict(source=source, data=data, shots=4, method="finetune", steps=6, batch_size=2, output_dir=str(out),
                    save_every=3, sample_every=3, log_every=1, r1_every=2, device="cpu")
    defaults.update(kw)
    return TrainingArguments(**defaults)


def weights(path):
    return AutoGenerator.from_pretrained(path).state_dict()


def test_short_run_writes_a_complete_model_folder(tmp_path, source_and_data):
    out = AdaptationTrainer(quick_args(*source_and_data, tmp_path / "run")).train()
    G = AutoGenerator.from_pretrained(out)
    assert G.sample(2, output_type="pt").shape == (2, 3, 16, 16)
    lineage = json.loads((out / "lineage.json").read_text())
    assert lineage["kind"] == "adapted" and lineage["method"]["name"] == "finetune"
    assert lineage["data"]["shots"] == 4 and all(len(f["sha256"]) == 64 for f in lineage["data"]["files"])
    assert lineage["training"]["steps"] == 6 and lineage["training"]["discriminator"] == "source"
    # portable lineage: the local source by name, its path relative to the run and its digest; no absolute path
    assert lineage["base_model"]["id"] == "source" and lineage["base_model"]["path"] == "../source"
    assert len(lineage["base_model"]["sha256"]) == 64 and str(tmp_path) not in (out / "lineage.json").read_text()
    for name in ("samples.png", "shots.png", "source_vs_adapted.png", "grids/step_000000.png", "discriminator/model.safetensors"):
        assert (out / name).is_file(), name
    log = read_jsonl(out / "logs" / "train_log.jsonl")
    assert [r["step"] for r in log] == list(range(6)) and "loss_g" in log[0] and "r1" in log[0]
    assert any((out / "logs").rglob("events.out.tfevents*"))
    assert not torch.equal(weights(out)["main.0.weight"], weights(source_and_data[0])["main.0.weight"])


def test_resume_repeats_the_uninterrupted_run_bit_for_bit(tmp_path, source_and_data):
    straight = AdaptationTrainer(quick_args(*source_and_data, tmp_path / "a")).train()
    # continue from the straight run's mid-way checkpoint in a fresh folder: steps 3..5 again
    import shutil

    shutil.copytree(tmp_path / "a" / "checkpoint-3", tmp_path / "c" / "checkpoint-3")
    resumed = AdaptationTrainer(quick_args(*source_and_data, tmp_path / "c", resume="latest")).train()
    a, b = weights(straight), weights(resumed)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_resume_takes_this_invocations_learning_rate_and_the_checkpoints_moments(tmp_path, source_and_data):
    import shutil

    AdaptationTrainer(quick_args(*source_and_data, tmp_path / "a")).train()
    shutil.copytree(tmp_path / "a" / "checkpoint-3", tmp_path / "c" / "checkpoint-3")
    trainer = AdaptationTrainer(quick_args(*source_and_data, tmp_path / "c", resume="latest", lr_g=1e-4, lr_d=5e-5))
    seen = {}
    original = trainer._load_checkpoint

    def load_and_look(run, path):
        original(run, path)
        seen.update({name: (opt.param_groups[0]["lr"], opt.state_dict()["state"][0]["exp_avg_sq"].clone())
                     for name, opt in run.ctx.optimizers.items()})

    trainer._load_checkpoint = load_and_look
    trainer.train()
    assert seen["G"][0] == pytest.approx(1e-4) and seen["D"][0] == pytest.approx(5e-5)
    from fsgen_hub.training import checkpointing as ckpt

    saved = ckpt.load_tree(tmp_path / "a" / "checkpoint-3", "optimizer_G")["state"][0]["exp_avg_sq"]
    assert torch.equal(seen["G"][1], saved) and saved.abs().sum() > 0


def test_sigkill_then_resume_latest(tmp_path, source_and_data):
    source, data = source_and_data
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "fsgen_hub", "adapt", "--source", source, "--data", data, "--shots", "4",
           "--method", "finetune", "--steps", "400", "--batch-size", "2", "--save-every", "2",
           "--output-dir", str(out), "--device", "cpu", "--sample-every", "0"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    deadline = time.time() + 90
    while time.time() < deadline and not list(out.glob("checkpoint-*")):
        time.sleep(0.2)
    time.sleep(0.5)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    checkpoints = sorted(out.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    assert checkpoints, "no checkpoint was written before the kill"
    assert not (out / "model.safetensors").exists()
    last = int(checkpoints[-1].name.split("-")[1])
    cmd[cmd.index("400")] = str(last + 2)
    result = subprocess.run(cmd + ["--resume", "latest"], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    log = read_jsonl(out / "logs" / "train_log.jsonl")
    assert log[-1]["step"] == last + 1 and (out / "model.safetensors").is_file()


def test_two_cpu_processes_keep_identical_weights(tmp_path, source_and_data):
    source, data = source_and_data
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--standalone",  # a free port
           "-m", "fsgen_hub", "adapt", "--source", source, "--data", data, "--shots", "4", "--method", "finetune",
           "--steps", "4", "--batch-size", "2", "--output-dir", str(out), "--device", "cpu", "--save-every", "0"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=240)
    assert result.returncode == 0, result.stderr[-2000:]
    training = json.loads((out / "lineage.json").read_text())["training"]
    assert training["num_processes"] == 2 and training["replicas_identical"] is True


def test_fresh_discriminator_when_the_source_has_none(tmp_path, source_and_data, tiny_dcgan):
    tiny_dcgan[0].save_pretrained(tmp_path / "no_d")
    out = AdaptationTrainer(quick_args(str(tmp_path / "no_d"), source_and_data[1], tmp_path / "run", steps=2)).train()
    assert json.loads((out / "lineage.json").read_text())["training"]["discriminator"] == "fresh"


def test_bad_inputs(tmp_path, source_and_data):
    source, data = source_and_data
    with pytest.raises(DataError, match="only 6 images"):
        AdaptationTrainer(quick_args(source, data, tmp_path / "a", shots=20)).train()
    (tmp_path / "data" / "broken.png").write_bytes(b"not an image")
    with pytest.raises(DataError, match="broken.png"):
        AdaptationTrainer(quick_args(source, data, tmp_path / "b", shots=None)).train()
    with pytest.raises(FsgenError, match="unknown method 'dapp'; registered: .*finetune"):
        AdaptationTrainer(quick_args(source, data, tmp_path / "c", method="dapp"))
    with pytest.raises(FsgenError, match="no model folder"):
        AdaptationTrainer(quick_args(str(tmp_path / "nope" / "x"), data, tmp_path / "d")).train()
    assert not (tmp_path / "a" / "model.safetensors").exists() and not (tmp_path / "b" / "model.safetensors").exists()


def test_nan_loss_stops_with_a_clear_error(tmp_path, source_and_data):
    with pytest.raises(FsgenError, match="became nan|became inf"):
        AdaptationTrainer(quick_args(*source_and_data, tmp_path / "nan", lr_g=1e30, lr_d=1e30, steps=6)).train()
    assert not (tmp_path / "nan" / "model.safetensors").exists()


def test_finished_run_is_not_overwritten(tmp_path, source_and_data):
    AdaptationTrainer(quick_args(*source_and_data, tmp_path / "done", steps=1)).train()
    with pytest.raises(FsgenError, match="already holds a finished run"):
        AdaptationTrainer(quick_args(*source_and_data, tmp_path / "done", steps=1)).train()


def test_a_checkpoint_loop_state_is_the_run_state_in_its_recorded_format(tmp_path, source_and_data):
    from fsgen_hub.training import checkpointing as ckpt
    from fsgen_hub.training.trainer import RunState

    out = AdaptationTrainer(quick_args(*source_and_data, tmp_path / "run", steps=4, no_eval=True)).train()
    raw = json.loads((out / "checkpoint-3" / "loop_state.json").read_text())
    # the file format of earlier checkpoints: these keys, in this order, nothing pickled
    assert list(raw["tree"]) == ["step", "best", "mean_path_length"] and raw["tree"]["step"] == 3
    state = RunState()
    state.load_tree(ckpt.load_tree(out / "checkpoint-3", "loop_state"))
    assert state == RunState(step=3, best=None, mean_path_length=0.0)  # a DCGAN has no path-length term
    assert list(state.to_tree()) == list(raw["tree"])
