"""The mixin path (``save_pretrained``/``push_to_hub``) and ``fsgen push`` are one path, against tests/hub_server.py."""
from __future__ import annotations

import pytest
import torch
from helpers import HUB_WRITE_TOKEN
from huggingface_hub import ModelCard
from safetensors.torch import load as safetensors_load
from test_cards import METRICS, make_model_folder

from fsgen_hub import cards
from fsgen_hub.auto import AutoGenerator
from fsgen_hub.cards import write_model_card
from fsgen_hub.publish import push_folder
from fsgen_hub.utils.errors import FsgenError
from fsgen_hub.utils.io import append_jsonl

TOKEN = HUB_WRITE_TOKEN


@pytest.fixture
def model_dir(tmp_path, tiny_dcgan):
    folder = make_model_folder(tmp_path / "run", tiny_dcgan)
    write_model_card(folder)
    return folder


def test_push_to_hub_publishes_what_fsgen_push_publishes(hub, model_dir):
    push_folder(model_dir, "alice/via-cli", token=TOKEN)
    G = AutoGenerator.from_pretrained(model_dir)
    commit = G.push_to_hub("alice/via-mixin", token=TOKEN)
    assert len(hub.history("alice/via-mixin")) == 2  # created + ONE commit with the whole model
    assert str(commit) == commit.commit_url and "/alice/via-mixin/commit/" in commit.commit_url
    by_cli, by_mixin = hub.files("alice/via-cli"), hub.files("alice/via-mixin")
    assert set(by_mixin) == set(by_cli)
    assert {"discriminator/model.safetensors", "lineage.json", "metrics.jsonl", "samples.png"} <= set(by_mixin)
    for name in set(by_cli) - {"README.md"}:
        if name.endswith(".safetensors"):  # re-saved weights: the same tensors (header key order is not fixed)
            mixin, cli = safetensors_load(by_mixin[name]), safetensors_load(by_cli[name])
            assert mixin.keys() == cli.keys() and all(torch.equal(mixin[k], cli[k]) for k in cli), name
        else:
            assert by_mixin[name] == by_cli[name], name
    # the same card, naming its own repo
    def body(card: bytes) -> str:  # without the digest line, which follows the text
        return card.decode().rsplit("<!-- fsgen_hub generated card", 1)[0]

    assert body(by_mixin["README.md"]) == body(by_cli["README.md"]).replace("via-cli", "via-mixin")
    card = ModelCard(by_mixin["README.md"].decode())
    assert {r.metric_type for r in card.data.eval_results} == {"swd", "fid5k"} and card.data.base_model


def test_changed_weights_publish_no_stale_companions(hub, model_dir):
    G = AutoGenerator.from_pretrained(model_dir)
    with torch.no_grad():
        next(G.parameters()).add_(1.0)
    G.push_to_hub("alice/changed", token=TOKEN)
    files = hub.files("alice/changed")
    # metrics, samples, lineage and D of the folder describe other weights: they stay behind
    assert set(files) == {".gitattributes", "README.md", "config.json", "model.safetensors"}
    assert "no lineage.json" in files["README.md"].decode()
    loaded = AutoGenerator.from_pretrained("alice/changed")
    assert torch.equal(loaded.sample(2, seed=0, output_type="pt"), G.sample(2, seed=0, output_type="pt"))


def test_save_pretrained_push_to_hub_takes_the_mixin_arguments(hub, tmp_path, tiny_dcgan):
    G, D = tiny_dcgan
    url = G.save_pretrained(tmp_path / "saved", discriminator=D, push_to_hub=True, repo_id="alice/saved",
                            private=True, branch="dev", token=TOKEN, commit_message="first",
                            model_card_kwargs={"tags": ["sketches"], "license": "apache-2.0"})
    assert "/alice/saved/commit/" in str(url)
    repo = hub.repos["alice/saved"]
    assert repo.private and hub.history("alice/saved", "dev")[0].message == "first"
    assert set(hub.files("alice/saved", "main")) == {".gitattributes"}  # main untouched
    pushed = hub.files("alice/saved", "dev")
    local_card = (tmp_path / "saved" / "README.md").read_text()
    assert pushed["README.md"].decode() == local_card  # the folder's card is the published card
    card = ModelCard(local_card)
    assert "sketches" in card.data.tags and card.data.license == "apache-2.0"
    assert card.data.library_name == "fsgen_hub" and "discriminator/model.safetensors" in pushed


def test_create_pr_leaves_main_alone(hub, model_dir):
    G = AutoGenerator.from_pretrained(model_dir)
    G.push_to_hub("alice/pr", token=TOKEN)
    main_head = hub.history("alice/pr")[0].oid
    append_jsonl(model_dir / "metrics.jsonl", {**METRICS[1], "value": 9.5})  # something new to propose
    commit = G.push_to_hub("alice/pr", token=TOKEN, create_pr=True, commit_message="proposal")
    assert commit.pr_url.endswith("/alice/pr/discussions/1") and commit.pr_revision == "refs/pr/1"
    assert hub.history("alice/pr")[0].oid == main_head
    assert hub.history("alice/pr", "refs/pr/1")[0].message == "proposal"
    assert b"9.5" in hub.files("alice/pr", "refs/pr/1")["metrics.jsonl"]
    assert b"9.5" not in hub.files("alice/pr")["metrics.jsonl"]


def test_class_metadata_and_card_hook(tmp_path, tiny_dcgan):
    G, _ = tiny_dcgan
    info = G._hub_mixin_info
    assert info.model_card_data.library_name == cards.LIBRARY_NAME
    assert info.model_card_data.pipeline_tag == cards.PIPELINE_TAG
    assert {"gan", "fsgen_hub"} <= set(info.model_card_data.tags) and info.repo_url and info.docs_url
    card = G.generate_model_card(tags=["extra-tag"])  # the mixin's hook renders fsgen_hub's card
    assert card.data.pipeline_tag == cards.PIPELINE_TAG and "extra-tag" in card.data.tags
    assert "fsgen_hub generated card" in card.content
    with pytest.raises(FsgenError, match="model_card_kwargs colour not supported"):
        G.generate_model_card(colour="red")
    with pytest.raises(FsgenError, match="not a Hub licence id"):
        G.save_pretrained(tmp_path / "bad", model_card_kwargs={"license": "my-own"})


def test_config_argument_is_checked_against_the_weights(tmp_path, tiny_dcgan, hub):
    G, _ = tiny_dcgan
    G.save_pretrained(tmp_path / "same", config={"ndf": 4})  # consistent with the weights: accepted
    assert AutoGenerator.from_pretrained(tmp_path / "same").config == G.config
    with pytest.raises(FsgenError, match="config= does not describe this model's weights"):
        G.save_pretrained(tmp_path / "wrong", config={"ngf": 8})
    with pytest.raises(FsgenError, match="unsupported argument.*allow_patterns"):
        G.save_pretrained(tmp_path / "x", push_to_hub=True, repo_id="alice/x", token=TOKEN, allow_patterns=["*"])
    assert "alice/x" not in hub.repos
