"""Model cards rendered from a model folder: metadata round trips, every lineage kind, metric selection."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from hub_server import local_hub, validate_card_metadata
from huggingface_hub import ModelCard
from PIL import Image

from fsgen_hub.cards import (
    is_unedited_generated_card,
    published_metrics,
    refresh_model_card,
    render_model_card,
    write_model_card,
)
from fsgen_hub.utils.errors import FsgenError
from fsgen_hub.utils.io import append_jsonl

BASE = {"id": "fsgen/dcgan-digiface64", "revision": None, "commit": None, "architecture": "dcgan", "license": "mit",
        "data_terms": "synthetic faces (DigiFace-1M): research use"}


def _metric(name, value, step, reference="someone/sketch-eval", extractor=None, sha=None, n=100):
    return {"metric": name, "value": value, "model": "x", "step": step, "timestamp": "2026-01-01T00:00:00+00:00",
            "protocol": {"num_samples": n, "num_reference": 12, "reference": reference, "resolution": 16, "seed": 0,
                         "feature_extractor": extractor, "weights_sha256": sha}, "details": {}}


# swd at steps 2, 4 (selected best) and 6 (the last step: NOT the published weights), fid after training.
METRICS = [
    _metric("swd", 31.5, 2),
    _metric("swd", 12.3125, 4),
    _metric("swd", 14.0, 6),
    _metric("fid5k", 87.625, None, reference="/home/someone/private/cufs", extractor="pt_inception-2015-12-05",
            sha="ab" * 32, n=5000),
]


def lineage_for(kind: str) -> dict | None:
    if kind == "none":
        return None
    lineage = {
        "fsgen_hub_version": "0.1.0", "kind": kind, "base_model": dict(BASE),
        "data": {"id": "someone/ten-sketches", "shots": 4, "shot_seed": 0, "image_column": None,
                 "files": [{"name": f"s{i}.png", "sha256": f"{i}" * 64} for i in range(4)]},
        "training": {"steps": 6, "batch_size": 2, "seed": 0, "mixed_precision": "no", "num_processes": 1,
                     "wall_time_s": 12.5, "hardware": "cpu (2 cores, x86_64)", "discriminator": "source"},
        "artifacts": {"samples": "samples.png", "source_vs_adapted": "source_vs_adapted.png", "shots": "shots.png",
                      "pruning_plot": "pruning.png"},
    }
    if kind == "adapted":
        lineage["method"] = {"name": "finetune", "config": {"freeze_d_layers": 0},
                             "paper": "Wang et al., ECCV 2018 (TransferGAN)", "description": "fine-tune all weights"}
        lineage["best_checkpoint"] = {"metric": "swd", "value": 12.3125, "step": 4, "used_evaluation_set": True}
    elif kind == "trained":
        lineage["base_model"] = {"id": None, "architecture": "dcgan"}
        lineage["training"]["discriminator"] = "fresh"
    elif kind == "converted":
        lineage = {"fsgen_hub_version": "0.1.0", "kind": "converted",
                   "base_model": {"id": "550000.pt", "architecture": "dcgan",
                                  "license": "nvidia-source-code-license-nc"},
                   "conversion": {"source_file": "550000.pt", "sha256": "cd" * 32, "format": "rosinality"},
                   "discriminator": "converted"}
    return lineage


def make_model_folder(path: Path, tiny_dcgan, kind: str = "adapted", metrics: list[dict] | None = None) -> Path:
    """A model folder as the trainer leaves it (weights, D, lineage, metrics, images) without training."""
    G, D = tiny_dcgan
    G.save_pretrained(path, discriminator=D, lineage=lineage_for(kind))
    (path / "README.md").unlink()  # save_pretrained wrote a card; these tests decide when cards are written
    for record in METRICS if metrics is None else metrics:
        append_jsonl(path / "metrics.jsonl", record)
    for i, name in enumerate(("samples.png", "source_vs_adapted.png", "shots.png", "pruning.png")):
        Image.new("RGB", (8, 8), (40 * i, 0, 0)).save(path / name)
    return path


def test_card_metadata_parses_back_and_carries_the_published_metrics(tmp_path, tiny_dcgan):
    folder = make_model_folder(tmp_path / "m", tiny_dcgan)
    path = write_model_card(folder)
    card = ModelCard.load(path)
    data = card.data
    assert data.library_name == "fsgen_hub" and data.pipeline_tag == "unconditional-image-generation"
    assert {"gan", "few-shot", "fsgen_hub", "finetune", "dcgan"} <= set(data.tags)
    assert data.license == "mit" and data.base_model == "fsgen/dcgan-digiface64"
    assert data.datasets == ["someone/ten-sketches"] and data["base_model_relation"] == "finetune"
    # model-index = the last record per metric among those describing the published (best, step 4) weights
    results = {r.metric_type: r for r in data.eval_results}
    assert set(results) == {"swd", "fid5k"}
    assert results["swd"].metric_value == METRICS[1]["value"]  # step 4, not the later step-6 value 14.0
    assert results["fid5k"].metric_value == METRICS[3]["value"]
    assert results["fid5k"].metric_config == "pt_inception-2015-12-05"
    assert results["fid5k"].metric_args == {"num_samples": 5000, "num_reference": 12, "resolution": 16, "seed": 0,
                                            "weights_sha256": "ab" * 32}
    assert results["swd"].metric_config == "none" and results["swd"].dataset_type == "someone/sketch-eval"
    assert validate_card_metadata(path.read_text()) == []
    text = card.text
    for expected in ('AutoGenerator.from_pretrained("REPO_ID")', "G.sample(8, seed=0)", "![Samples](samples.png)",
                     "(source_vs_adapted.png)", "(shots.png)", "(pruning.png)", "TransferGAN", '"freeze_d_layers": 0',
                     "Checkpoint selection used the evaluation set", "step 4", "DigiFace-1M", "cpu (2 cores, x86_64)",
                     "12.5 s", "`pt_inception-2015-12-05`", "Intended use"):
        assert expected in text, expected
    assert "/home/someone" not in path.read_text()  # absolute local paths are shown by their name only
    assert is_unedited_generated_card(path)


@pytest.mark.parametrize("kind", ["adapted", "trained", "converted", "none"])
def test_every_kind_renders_a_valid_card(tmp_path, tiny_dcgan, kind):
    folder = make_model_folder(tmp_path / kind, tiny_dcgan, kind=kind, metrics=[] if kind == "none" else None)
    text = write_model_card(folder, repo_id="alice/model").read_text()
    data = ModelCard.load(folder / "README.md").data
    assert validate_card_metadata(text) == [], kind
    assert 'AutoGenerator.from_pretrained("alice/model")' in text and "REPO_ID" not in text
    expected_license = {"adapted": "mit", "trained": "unknown", "converted": "other", "none": "unknown"}[kind]
    assert data.license == expected_license
    assert ("few-shot" in data.tags) == (kind == "adapted") and "dcgan" in data.tags
    assert ("## Method: finetune" in text) == (kind == "adapted")
    if kind == "converted":  # not a Hub licence id: kept by name, with its link, and explained in the body
        assert data["license_name"] == "nvidia-source-code-license-nc" and data["license_link"].startswith("https://")
        assert data.base_model is None  # "550000.pt" is a file name, not a hub model id
        assert "converted to the fsgen_hub format" in text and "cd" * 32 in text
    if kind == "trained":
        assert data.base_model is None and "trained from scratch" in text
    if kind == "none":
        assert data.eval_results is None and "No metrics were recorded" in text and "no lineage.json" in text


def test_card_validates_against_the_local_hub(tmp_path, tiny_dcgan, monkeypatch):
    card = ModelCard.load(write_model_card(make_model_folder(tmp_path / "m", tiny_dcgan)))
    with local_hub(monkeypatch, tmp_path / "cache") as server:
        card.validate()  # POST /api/validate-yaml through huggingface_hub's own code
        assert [r["route"] for r in server.requests] == ["validate_yaml"]
        # the server really checks: a raw non-Hub licence id is refused
        card.data.license = "nvidia-source-code-license-nc"
        with pytest.raises(ValueError, match="not a Hub licence id"):
            card.validate()


def test_published_metrics_keep_the_last_result_of_the_published_step():
    lineage = {"training": {"steps": 6}}
    assert [r["value"] for r in published_metrics(METRICS, lineage)] == [14.0, 87.625]
    lineage["best_checkpoint"] = {"step": 4}
    assert [r["value"] for r in published_metrics(METRICS, lineage)] == [12.3125, 87.625]
    # no lineage: nothing says which step was published, so the last result per name wins
    assert [r["value"] for r in published_metrics(METRICS, None)] == [14.0, 87.625]
    later = _metric("swd", 9.5, None)  # `fsgen evaluate` on the folder after training
    assert [r["value"] for r in published_metrics([*METRICS, later], lineage)] == [87.625, 9.5]


def test_not_a_model_folder_and_broken_inputs_are_one_line_errors(tmp_path, tiny_dcgan):
    (tmp_path / "empty").mkdir()
    for bad, pattern in [(tmp_path / "empty", "not an fsgen_hub model folder"), (tmp_path / "nope", "no model folder")]:
        with pytest.raises(FsgenError, match=pattern) as info:
            write_model_card(bad)
        assert "\n" not in str(info.value)
    assert not (tmp_path / "empty" / "README.md").exists()

    folder = make_model_folder(tmp_path / "m", tiny_dcgan)
    good = write_model_card(folder).read_text()
    with open(folder / "metrics.jsonl", "a") as f:
        f.write('{"metric": "swd", "value": \n')
    with pytest.raises(FsgenError, match=r"metrics.jsonl line 5 is not JSON") as info:
        write_model_card(folder)
    assert "\n" not in str(info.value)
    assert (folder / "README.md").read_text() == good  # the failed render left the card untouched
    assert not [p for p in folder.iterdir() if p.name.endswith(".tmp")]

    (folder / "metrics.jsonl").unlink()
    (folder / "lineage.json").write_text("{not json")
    with pytest.raises(FsgenError, match="lineage.json is not readable JSON"):
        render_model_card(folder)
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "model.safetensors").write_bytes(b"x")
    (tmp_path / "d" / "config.json").write_text(json.dumps({"architecture": "dcgan", "role": "discriminator"}))
    with pytest.raises(FsgenError, match="not a generator"):
        render_model_card(tmp_path / "d")


def test_an_edited_card_is_kept_and_an_unedited_one_is_refreshed(tmp_path, tiny_dcgan):
    folder = make_model_folder(tmp_path / "m", tiny_dcgan)
    path = write_model_card(folder)
    assert refresh_model_card(folder, "alice/m") == "refreshed"
    assert 'from_pretrained("alice/m")' in path.read_text() and is_unedited_generated_card(path)
    edited = path.read_text().replace("## Intended use", "My own notes.\n\n## Intended use")
    path.write_text(edited)
    assert not is_unedited_generated_card(path)
    assert refresh_model_card(folder, "alice/other") == "kept" and path.read_text() == edited
    path.unlink()
    assert refresh_model_card(folder, "alice/m") == "written" and path.is_file()


def test_local_data_paths_are_shown_by_name_only():
    from fsgen_hub.cards import _display

    assert _display("/home/alice/data/faces.parquet", Path(".")) == "a local file (`faces.parquet`)"
    assert _display("/home/alice/data/sketches", Path(".")) == "a local folder (`sketches`)"
    assert "alice" not in _display("C:\\Users\\alice\\shots", Path("."))
