"""Run folders are safe to resume (no code runs), checkpoints belong to their run, bad inputs leave nothing.

Issue 16 items 1 and 5, issue 20 item 4. The attack files are made here, small.
"""
from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys

import pytest
import torch
from conftest import save_tiny_dcgan_source, write_random_images

from fsgen_hub.auto import AutoGenerator
from fsgen_hub.training.arguments import TrainingArguments
from fsgen_hub.training.trainer import AdaptationTrainer
from fsgen_hub.utils.errors import FsgenError
from fsgen_hub.utils.io import read_jsonl


@pytest.fixture
def source_and_data(tmp_path):
    return str(save_tiny_dcgan_source(tmp_path / "source")), str(write_random_images(tmp_path / "data", count=6))


def quick_args(source, data, out, **kw):
    values = dict(source=source, data=data, shots=4, method="finetune", steps=4, batch_size=2, output_dir=str(out),
                  save_every=2, sample_every=0, log_every=1, r1_every=2, device="cpu")
    values.update(kw)
    return TrainingArguments(**values)


@pytest.fixture(scope="module")
def shared_run(tmp_path_factory):
    """One finished 4-step run (checkpoint-2 kept) shared by the tests that only read it or copy from it."""
    tmp = tmp_path_factory.mktemp("shared_run")
    source, data = str(save_tiny_dcgan_source(tmp / "source")), str(write_random_images(tmp / "data", count=6))
    out = tmp / "run"
    AdaptationTrainer(quick_args(source, data, out)).train()
    return source, data, out


class _RunsCode:
    """Unpickling this makes a folder: proof that a pickle in the run folder was executed."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.mkdir, (self.marker,)


# ------------------------------------------------------------------------------------- item 1
def test_resume_never_unpickles_files_of_the_run_folder(tmp_path, shared_run):
    *source_and_data, finished_run = shared_run
    checkpoint = tmp_path / "shared" / "checkpoint-2"
    shutil.copytree(finished_run / "checkpoint-2", checkpoint)
    written = {p.suffix for p in checkpoint.iterdir()}
    marker = tmp_path / "code-ran"
    # the files Accelerate's load_state unpickles, planted by someone with write access to a shared run folder
    planted = [f"custom_checkpoint_{i}.pkl" for i in range(5)]
    for name in planted:
        (checkpoint / name).write_bytes(pickle.dumps(_RunsCode(marker)))
    shutil.copytree(checkpoint, tmp_path / "resumed" / "checkpoint-2")
    try:
        AdaptationTrainer(quick_args(*source_and_data, tmp_path / "resumed", resume="latest")).train()
    finally:
        assert not marker.exists(), "resuming ran code from a pickle in the run folder"
    a, b = AutoGenerator.from_pretrained(finished_run).state_dict(), AutoGenerator.from_pretrained(tmp_path / "resumed").state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)  # and the resume is still exact
    assert written <= {".json", ".safetensors"}  # the trainer itself writes nothing that could carry code


# ------------------------------------------------------------------------------------- item 5
@pytest.mark.parametrize("change, flag", [("method", "--method"), ("data", "--data"), ("source", "--source"),
                                          ("shot_seed", "--data")])
def test_resume_refuses_a_checkpoint_of_another_run(tmp_path, shared_run, change, flag):
    source, data, finished_run = shared_run
    overrides = {"method": {"method": "freezed"}, "shot_seed": {"shot_seed": 5},
                 "data": {"data": str(write_random_images(tmp_path / "other_data", count=6, seed=9))},
                 "source": {"source": str(save_tiny_dcgan_source(tmp_path / "other_source"))}}[change]
    if change == "source":  # same architecture, other weights
        G = AutoGenerator.from_pretrained(overrides["source"])
        with torch.no_grad():
            G.main[0].weight.add_(1.0)
        G.save_pretrained(overrides["source"])
    before = sorted(p.name for p in finished_run.rglob("*"))
    with pytest.raises(FsgenError, match=f"belongs to a run with another {flag}") as info:
        values = {"source": source, "data": data, **overrides}
        AdaptationTrainer(quick_args(values.pop("source"), values.pop("data"), finished_run, steps=6, resume="latest",
                                     **values)).train()
    assert len(str(info.value).splitlines()) == 1
    assert sorted(p.name for p in finished_run.rglob("*")) == before


def test_resume_latest_counts_only_complete_numbered_checkpoints(tmp_path, shared_run):
    *source_and_data, finished_run = shared_run
    out = tmp_path / "partial"
    shutil.copytree(finished_run / "checkpoint-2", out / "checkpoint-2")
    shutil.copytree(finished_run / "checkpoint-2", out / "checkpoint-backup")  # a user's copy: not a step
    (out / "checkpoint-9").mkdir()  # a half-copied folder without trainer_state.json
    (out / "checkpoint-9" / "generator.safetensors").write_bytes(b"")
    AdaptationTrainer(quick_args(*source_and_data, out, resume="latest")).train()
    assert [r["step"] for r in read_jsonl(out / "logs" / "train_log.jsonl")] == [2, 3]  # resumed from step 2


def test_output_dir_holding_another_model_or_a_file_is_refused(tmp_path, source_and_data, tiny_dcgan):
    other = tmp_path / "other_model"
    tiny_dcgan[0].save_pretrained(other)  # a model folder without lineage.json
    before = {p.name: p.read_bytes() for p in other.iterdir()}
    with pytest.raises(FsgenError, match="already holds a model"):
        AdaptationTrainer(quick_args(*source_and_data, other)).train()
    assert {p.name: p.read_bytes() for p in other.iterdir()} == before
    (tmp_path / "a_file").write_text("keep me")
    with pytest.raises(FsgenError, match="is a file"):
        AdaptationTrainer(quick_args(*source_and_data, tmp_path / "a_file")).train()
    assert (tmp_path / "a_file").read_text() == "keep me"


# ------------------------------------------------------------------------------------- issue 20, item 4
def _fsgen(cwd, *args):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "fsgen_hub", *args], capture_output=True, text=True, env=env,
                          timeout=240, cwd=cwd)


# two cases in a real subprocess (logging and progress output as a user sees them), the rest in-process (fast)
@pytest.mark.parametrize("case, message", [
    ("missing data", "no folder or file"),
    ("corrupt image", "cannot read image broken.png"),
    ("too few images", "only 6 images"),
    ("nan loss", "became (nan|inf)"),
    ("unknown method", "unknown method 'dapp'"),
    ("nan loss, existing folder", "became (nan|inf)"),
    ("missing data, default folder", "no folder or file"),
])
def test_adapt_bad_inputs_exit_2_with_one_line_and_leave_nothing(tmp_path, source_and_data, case, message, capsys,
                                                                   monkeypatch):
    source, data = source_and_data
    out = tmp_path / "out"
    args = ["adapt", "--source", source, "--data", data, "--shots", "4", "--method", "finetune", "--steps", "3",
            "--batch-size", "2", "--device", "cpu", "--sample-every", "0", "--save-every", "0"]
    if "default folder" not in case:
        args += ["--output-dir", str(out)]
    if case.startswith("missing data"):
        args[args.index(data)] = str(tmp_path / "nope")
    elif case == "corrupt image":
        (tmp_path / "data" / "broken.png").write_bytes(b"not an image")
        args[args.index("4")] = "0"  # every image
    elif case == "too few images":
        args[args.index("4")] = "20"
    elif case.startswith("nan loss"):
        args += ["--lr-g", "1e30", "--lr-d", "1e30"]
    elif case == "unknown method":
        args[args.index("finetune")] = "dapp"
    if "existing folder" in case:
        out.mkdir()
    if case in ("nan loss, existing folder", "missing data, default folder"):
        result = _fsgen(tmp_path, *args)
        code, stderr = result.returncode, result.stderr
    else:
        from fsgen_hub import cli

        monkeypatch.chdir(tmp_path)
        code, stderr = cli.main(args), capsys.readouterr().err
    lines = stderr.strip().splitlines()
    assert code == 2, stderr[-2000:]
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr[-2000:]
    assert __import__("re").search(message, lines[0]), lines[0]
    if "existing folder" in case:
        assert out.is_dir() and not any(out.iterdir())  # left exactly as it was: empty
    else:
        assert not out.exists()
    assert not (tmp_path / "runs").exists()  # the default folder too: the next run does not go to runs/...-2


@pytest.mark.parametrize("method, options", [
    ("dap", {"interval": 2, "tau": 0.3, "max_layer_ratio": 0.5, "freeze_share": 0.3}),
    ("rick", {"interval": 2, "fisher_samples": 2}),
])
def test_pruning_state_survives_the_safe_checkpoint_format(tmp_path, source_and_data, method, options):
    """Masks, frozen values, Fisher estimates and decision history go through safetensors + JSON and back:
    a run resumed from a checkpoint taken between decisions ends exactly as the straight run."""
    kw = dict(method=method, method_options=options, steps=8, save_every=4, keep_checkpoints=3, warmup_steps=1)
    straight = AdaptationTrainer(quick_args(*source_and_data, tmp_path / "a", **kw)).train()
    shutil.copytree(straight / "checkpoint-4", tmp_path / "b" / "checkpoint-4")
    resumed = AdaptationTrainer(quick_args(*source_and_data, tmp_path / "b", resume="latest", **kw)).train()
    a, b = AutoGenerator.from_pretrained(straight).state_dict(), AutoGenerator.from_pretrained(resumed).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    decisions = (straight / "pruning.json").read_text()
    steps = [d["step"] for d in json.loads(decisions)["decisions"]]
    assert decisions == (resumed / "pruning.json").read_text() and min(steps) < 4 < max(steps)  # decided on both sides
