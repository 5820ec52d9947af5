"""`fsgen adapt` with no arguments (README "The main command"), shortened to two steps: what it adapts, with
which settings, and the terms its result carries."""
from __future__ import annotations

import json

from fsgen_hub.cli import main as cli_main
from fsgen_hub.training.trainer import EMBEDDED_DEFAULT_RUN
from fsgen_hub.zoo import DEFAULT_SOURCE, ZOO


def test_no_argument_run_adapts_the_default_source_with_its_discriminator_and_states_its_terms(tmp_path):
    out = tmp_path / "run"
    assert cli_main(["adapt", "--steps", "2", "--no-eval", "--report-to", "none", "--save-every", "0",
                     "--sample-every", "0", "--output-dir", str(out)]) == 0
    lineage = json.loads((out / "lineage.json").read_text())
    assert lineage["base_model"]["id"] == DEFAULT_SOURCE == "fsgen/stylegan2-faces64"
    assert lineage["training"]["discriminator"] == "source"  # the source D is adapted, not replaced by a fresh one
    assert lineage["method"]["name"] == EMBEDDED_DEFAULT_RUN["method"] == "finetune"
    assert "emoji" in str(lineage["data"]["id"])
    run_args = json.loads((out / "logs" / "run_args.json").read_text())
    assert {key: run_args[key] for key in EMBEDDED_DEFAULT_RUN} == EMBEDDED_DEFAULT_RUN
    # the UTKFace terms of the source carry over to the adapted model, in its metadata and its card
    assert lineage["base_model"]["license"] == ZOO[DEFAULT_SOURCE].license == "utkface-non-commercial-research"
    card = (out / "README.md").read_text()
    assert "UTKFace: non-commercial research use only" in card


def test_explicit_settings_win_over_the_embedded_run_and_runs_on_other_data_keep_the_default_method(tmp_path,
                                                                                                    monkeypatch):
    from fsgen_hub.training.arguments import TrainingArguments
    from fsgen_hub.training.trainer import DEFAULT_METHOD, AdaptationTrainer

    monkeypatch.chdir(tmp_path)
    explicit = AdaptationTrainer(TrainingArguments(method="dap", batch_size=2))
    assert (explicit.args.method, explicit.args.batch_size) == ("dap", 2)
    assert explicit.args.augment == EMBEDDED_DEFAULT_RUN["augment"] and str(explicit.output_dir) == "runs/dap-emoji"
    assert str(AdaptationTrainer(TrainingArguments()).output_dir) == "runs/finetune-emoji"
    other_data = AdaptationTrainer(TrainingArguments(data=str(tmp_path)))
    assert other_data.args.method == DEFAULT_METHOD == "dap" and other_data.args.batch_size is None
