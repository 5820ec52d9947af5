"""Pushing a finished run, against tests/hub_server.py: ``TrainingArguments(push_to_hub=...)`` makes ``train()`` push,
``fsgen adapt --push-to-hub`` pushes from the command after its summary; both go through
``AdaptationTrainer.push_to_hub`` (fsgen_hub.publish.push_folder), one commit each."""
from __future__ import annotations

import pytest
from helpers import HUB_WRITE_TOKEN, save_tiny_dcgan_source, write_random_images

from fsgen_hub.cli import main as cli_main
from fsgen_hub.publish import publishable_files, push_folder
from fsgen_hub.training.arguments import TrainingArguments
from fsgen_hub.training.trainer import AdaptationTrainer
from fsgen_hub.utils.errors import FsgenError

TOKEN = HUB_WRITE_TOKEN
RUN = dict(shots=4, method="finetune", steps=2, batch_size=2, save_every=0, sample_every=0, log_every=1,
           no_eval=True, report_to="none", device="cpu")


@pytest.fixture
def source_and_data(tmp_path):
    return str(save_tiny_dcgan_source(tmp_path / "source")), str(write_random_images(tmp_path / "data", seed=2))


def published_as_push_folder_publishes(hub, out, repo_id):
    """The pushed repo holds exactly the folder's publishable files, byte for byte, in as many commits as one
    ``push_folder`` of the same folder makes (so a second push would show)."""
    files = hub.files(repo_id)
    expected = {rel: path.read_bytes() for rel, path in publishable_files(out)}
    assert {name: files[name] for name in expected} == expected
    assert set(files) - set(expected) <= {".gitattributes"}
    push_folder(out, "alice/reference", token=TOKEN)
    assert len(hub.history(repo_id)) == len(hub.history("alice/reference"))


def test_train_pushes_when_the_arguments_name_a_repo(hub, tmp_path, source_and_data, monkeypatch, capsys):
    source, data = source_and_data
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    args = TrainingArguments(source=source, data=data, output_dir=str(tmp_path / "run"), push_to_hub="alice/api-run", **RUN)
    out = AdaptationTrainer(args).train()
    published_as_push_folder_publishes(hub, out, "alice/api-run")
    assert f"pushed to {hub.endpoint}/alice/api-run" in capsys.readouterr().out


def test_train_push_false_leaves_the_push_to_the_caller(hub, tmp_path, source_and_data, monkeypatch):
    source, data = source_and_data
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    args = TrainingArguments(source=source, data=data, output_dir=str(tmp_path / "run"), push_to_hub="alice/later", **RUN)
    trainer = AdaptationTrainer(args)
    out = trainer.train(push=False)
    assert "alice/later" not in hub.repos
    assert trainer.push_to_hub() == f"{hub.endpoint}/alice/later"
    published_as_push_folder_publishes(hub, out, "alice/later")


def test_fsgen_adapt_pushes_once_after_its_summary(hub, tmp_path, source_and_data, monkeypatch, capsys):
    source, data = source_and_data
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    out = tmp_path / "cli-run"
    code = cli_main(["adapt", "--source", source, "--data", data, "--shots", "4", "--method", "finetune", "--steps", "2",
                     "--batch-size", "2", "--save-every", "0", "--sample-every", "0", "--no-eval", "--report-to", "none",
                     "--device", "cpu", "--output-dir", str(out), "--push-to-hub", "alice/cli-run"])
    assert code == 0
    printed = capsys.readouterr().out
    assert printed.count("pushed to") == 1 and printed.index("model folder:") < printed.index("pushed to")
    published_as_push_folder_publishes(hub, out, "alice/cli-run")
    assert TOKEN not in printed


def test_a_failed_push_keeps_the_finished_run_and_says_how_to_publish_it(hub, tmp_path, source_and_data):
    source, data = source_and_data  # no token anywhere: the push fails after training
    out = tmp_path / "run"
    args = TrainingArguments(source=source, data=data, output_dir=str(out), push_to_hub="alice/no-token", **RUN)
    with pytest.raises(FsgenError) as failure:
        AdaptationTrainer(args).train()
    message = str(failure.value)
    assert "\n" not in message and f"`fsgen push {out} alice/no-token`" in message
    assert (out / "model.safetensors").is_file() and (out / "lineage.json").is_file() and (out / "README.md").is_file()
    assert "alice/no-token" not in hub.repos
    with pytest.raises(FsgenError, match="needs a hub repo id"):
        AdaptationTrainer(TrainingArguments(source=source, data=data, output_dir=str(out), **RUN)).push_to_hub()
