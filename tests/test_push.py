"""Publishing through a real local HTTP hub (tests/hub_server.py) with huggingface_hub's real client code."""
from __future__ import annotations

import logging

import pytest
import torch
from helpers import fsgen_cli
from hub_server import local_hub
from huggingface_hub import ModelCard, constants
from test_cards import METRICS, make_model_folder

from fsgen_hub.auto import AutoDiscriminator, AutoGenerator
from fsgen_hub.cards import write_model_card
from fsgen_hub.cli import main as cli_main
from fsgen_hub.publish import push_folder, scrub
from fsgen_hub.utils.errors import FsgenError, OfflineError
from fsgen_hub.utils.io import append_jsonl

TOKEN = "hf_TestWriteToken0123456789abcdef"
OTHER_TOKEN = "hf_BobsToken9876543210fedcbaXYZ"
PUBLISHED = {".gitattributes", "README.md", "config.json", "model.safetensors", "discriminator/config.json",
             "discriminator/model.safetensors", "lineage.json", "metrics.jsonl", "samples.png",
             "source_vs_adapted.png", "shots.png", "pruning.png"}


@pytest.fixture
def hub(monkeypatch, tmp_path):
    with local_hub(monkeypatch, tmp_path / "hf_cache", tokens={TOKEN: "alice", OTHER_TOKEN: "bob"},
                   orgs={"alice": ["fsgen"]}) as server:
        yield server


@pytest.fixture
def model_dir(tmp_path, tiny_dcgan):
    folder = make_model_folder(tmp_path / "run", tiny_dcgan)
    write_model_card(folder)
    # run-folder content that must stay local (CONTRACTS.md)
    for junk in ("checkpoint-4/model.safetensors", "logs/train_log.jsonl", "grids/step_000000.png",
                 ".model.safetensors.abc.tmp", ".cache/x", "discriminator/.partial"):
        (folder / junk).parent.mkdir(parents=True, exist_ok=True)
        (folder / junk).write_bytes(b"local only")
    return folder


def samples(model, **kwargs):
    return AutoGenerator.from_pretrained(model, **kwargs).sample(4, seed=0, output_type="pt")


def test_push_then_from_pretrained_gives_the_same_images(hub, model_dir, tmp_path):
    url = push_folder(model_dir, "alice/tiny-dcgan-finetune", token=TOKEN)
    assert url == f"{hub.endpoint}/alice/tiny-dcgan-finetune"
    history = hub.history("alice/tiny-dcgan-finetune")
    assert len(history) == 2  # the repo's initial commit + ONE commit holding the whole model
    files = hub.files("alice/tiny-dcgan-finetune")
    assert set(files) == PUBLISHED
    assert files["model.safetensors"] == (model_dir / "model.safetensors").read_bytes()

    cache = tmp_path / "fresh_cache"  # nothing local: every file comes over HTTP from the server
    assert torch.equal(samples("alice/tiny-dcgan-finetune", cache_dir=cache), samples(model_dir))
    D_hub = AutoDiscriminator.from_pretrained("alice/tiny-dcgan-finetune", cache_dir=cache)
    D_local = AutoDiscriminator.from_pretrained(model_dir)
    assert all(torch.equal(a, b) for a, b in zip(D_hub.state_dict().values(), D_local.state_dict().values()))

    card = ModelCard.load("alice/tiny-dcgan-finetune")  # hf_hub_download of README.md
    assert {r.metric_type: r.metric_value for r in card.data.eval_results} == {"swd": METRICS[1]["value"],
                                                                                "fid5k": METRICS[3]["value"]}
    # the unedited generated card was refreshed before upload: its snippet names the repo
    assert 'AutoGenerator.from_pretrained("alice/tiny-dcgan-finetune")' in card.text
    card.validate()

    # pushing again with a new metric: one more commit, unchanged files are not re-sent
    append_jsonl(model_dir / "metrics.jsonl", {**METRICS[3], "value": 80.0})
    push_folder(model_dir, "alice/tiny-dcgan-finetune", token=TOKEN)
    assert len(hub.history("alice/tiny-dcgan-finetune")) == 3
    last_commit = [r for r in hub.requests if r["route"] == "commit"][-1]["body"]
    assert b'"README.md"' in last_commit and b'"metrics.jsonl"' in last_commit
    assert b"model.safetensors" not in last_commit


def test_push_to_a_branch_and_an_org_namespace(hub, model_dir, tmp_path):
    push_folder(model_dir, "fsgen/tiny", token=TOKEN)  # alice may write to the fsgen org
    main_head = hub.history("fsgen/tiny")[0].oid
    append_jsonl(model_dir / "metrics.jsonl", {**METRICS[3], "value": 70.0})
    url = push_folder(model_dir, "fsgen/tiny", token=TOKEN, revision="experiment", commit_message="try 70")
    assert url.endswith("/fsgen/tiny/tree/experiment")
    assert hub.history("fsgen/tiny")[0].oid == main_head  # main untouched
    branch = hub.history("fsgen/tiny", "experiment")
    assert branch[0].message == "try 70" and branch[1].oid == main_head
    assert b"70.0" in hub.files("fsgen/tiny", "experiment")["metrics.jsonl"]
    assert torch.equal(samples("fsgen/tiny", revision="experiment", cache_dir=tmp_path / "c"), samples(model_dir))


def test_the_token_never_leaks(hub, model_dir, caplog, capsys):
    caplog.set_level(logging.DEBUG)
    push_folder(model_dir, "alice/secret-check", token=TOKEN)
    errors = []
    hub.fail["commit"] = 500
    append_jsonl(model_dir / "metrics.jsonl", {**METRICS[3], "value": 1.0})
    for repo in ("alice/secret-check", "bob/not-alice"):  # server error, then 403 on someone else's namespace
        with pytest.raises(FsgenError) as info:
            push_folder(model_dir, repo, token=TOKEN)
        errors.append(str(info.value))
    assert "HTTP 500" in errors[0] and "403" in errors[1]
    out = capsys.readouterr()
    needle = TOKEN.encode()
    for where, data in hub.stored_bytes():
        assert needle not in data, where
    for request in hub.requests:  # only the Authorization header may carry it
        assert needle not in request["body"] and TOKEN not in request["path"]
    assert TOKEN not in out.out + out.err + caplog.text + "".join(errors)
    for path in model_dir.rglob("*"):
        assert not path.is_file() or needle not in path.read_bytes(), path
    # a token that ended up inside a file is refused before anything is sent
    # (in a published file: the README edited by hand; files outside the allow-list are never sent at all)
    with open(model_dir / "README.md", "a") as card:
        card.write(f"\ntoken={TOKEN}\n")
    hub.fail.clear()
    sent = len(hub.requests)
    with pytest.raises(FsgenError, match="README.md contains a hub token") as info:
        push_folder(model_dir, "alice/secret-check", token=TOKEN)
    assert TOKEN not in str(info.value) and len(hub.requests) == sent
    assert scrub(f"401 for Bearer {TOKEN} and {OTHER_TOKEN}", [TOKEN]) == "401 for Bearer *** and hf_***"


def test_bad_inputs_are_one_line_errors_and_publish_nothing(hub, model_dir, tmp_path, monkeypatch, tiny_dcgan):
    def one_line(exc_info):
        assert "\n" not in str(exc_info.value), str(exc_info.value)
        return str(exc_info.value)

    (tmp_path / "empty").mkdir()
    with pytest.raises(FsgenError, match="not an fsgen_hub model folder") as info:
        push_folder(tmp_path / "empty", "alice/x", token=TOKEN)
    one_line(info)
    no_card = make_model_folder(tmp_path / "no_card", tiny_dcgan)
    with pytest.raises(FsgenError, match="no README.md model card: run `fsgen push`") as info:
        push_folder(no_card, "alice/x", token=TOKEN)
    one_line(info)
    with pytest.raises(FsgenError, match="not a hub repo id") as info:
        push_folder(model_dir, "alice/bad name", token=TOKEN)
    one_line(info)
    with pytest.raises(FsgenError, match=r"refused the credentials .*\(401\).*HF_TOKEN") as info:
        push_folder(model_dir, "alice/x")  # no token anywhere (the fixture hid any stored login)
    one_line(info)
    with pytest.raises(FsgenError, match=r"\(401\)") as info:
        push_folder(model_dir, "alice/x", token="hf_NotAValidToken000000000")
    assert "hf_NotAValid" not in one_line(info)
    assert "alice/x" not in hub.repos and hub.requests[-1]["status"] != 200

    # a server error in the middle of the upload: the existing model stays exactly as it was
    push_folder(model_dir, "alice/x", token=TOKEN)
    before = hub.history("alice/x")
    append_jsonl(model_dir / "metrics.jsonl", {**METRICS[3], "value": 5.0})
    hub.fail["commit"] = 500
    with pytest.raises(FsgenError, match="HTTP 500 while uploading the files.*nothing was published") as info:
        push_folder(model_dir, "alice/x", token=TOKEN)
    one_line(info)
    assert hub.history("alice/x") == before and b"5.0" not in hub.files("alice/x")["metrics.jsonl"]

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(OfflineError, match="HF_HUB_OFFLINE"):
        push_folder(model_dir, "alice/x", token=TOKEN)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    with pytest.raises(OfflineError, match="cannot reach the hub") as info:
        push_folder(model_dir, "alice/x", token=TOKEN)
    one_line(info)


def test_cli_errors_exit_2_with_one_line(hub, model_dir, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert cli_main(["push", str(tmp_path / "empty"), "alice/x", "--token", TOKEN]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "not an fsgen_hub model folder" in err and err.count("\n") == 1
    assert cli_main(["push", str(model_dir), "alice/x"]) == 2  # no token
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "401" in err and err.count("\n") == 1
    assert "alice/x" not in hub.repos


def test_fsgen_push_subprocess_writes_the_card_and_publishes(hub, tmp_path, tiny_dcgan):
    folder = make_model_folder(tmp_path / "fresh", tiny_dcgan)  # no README.md yet: `fsgen push` writes it
    # online (HF_HUB_OFFLINE removed) against the local server: HF_ENDPOINT/HF_HUB_CACHE are set by the fixture
    result = fsgen_cli("push", folder, "alice/from-cli", "--private", env={"HF_TOKEN": TOKEN, "HF_HUB_OFFLINE": None})
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [f"wrote the model card {folder / 'README.md'}",
                                          f"{hub.endpoint}/alice/from-cli"]
    assert TOKEN not in result.stdout + result.stderr
    assert hub.repos["alice/from-cli"].private
    readme = hub.files("alice/from-cli")["README.md"].decode()
    assert readme == (folder / "README.md").read_text() and 'from_pretrained("alice/from-cli")' in readme


def test_adapt_output_is_publishable_as_it_is(hub, tmp_path, tiny_dcgan):
    from PIL import Image

    from fsgen_hub.training.arguments import TrainingArguments
    from fsgen_hub.training.trainer import AdaptationTrainer

    G, D = tiny_dcgan
    G.save_pretrained(tmp_path / "source", discriminator=D)
    data = tmp_path / "data"
    data.mkdir()
    for i in range(4):
        Image.new("RGB", (20, 20), (60 * i, 30, 200 - 40 * i)).save(data / f"img{i}.png")
    args = TrainingArguments(source=str(tmp_path / "source"), data=str(data), shots=4, method="finetune", steps=4,
                             batch_size=2, output_dir=str(tmp_path / "run"), save_every=3, sample_every=3,
                             log_every=1, device="cpu")
    out = AdaptationTrainer(args).train()
    assert (out / "README.md").is_file() and (out / "checkpoint-3").is_dir()
    card = ModelCard.load(out / "README.md")
    assert card.data.base_model is None  # the source was a local folder, not a hub id
    assert "finetune" in card.data.tags and "a local folder (`source`)" in card.text
    assert "![Source vs adapted](source_vs_adapted.png)" in card.text and "Steps | 4 |" in card.text
    push_folder(out, "alice/adapted", token=TOKEN)
    files = set(hub.files("alice/adapted"))
    assert {"README.md", "model.safetensors", "lineage.json", "samples.png", "shots.png"} <= files
    assert not any(f.startswith(("checkpoint-", "logs/", "grids/")) for f in files)
    assert torch.equal(samples("alice/adapted", cache_dir=tmp_path / "c"), samples(out))
