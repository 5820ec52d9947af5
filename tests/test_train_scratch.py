"""``fsgen train``: the trainer from random initialisation, a complete G + D folder, chunked runs that resume exactly."""
from __future__ import annotations

import json

import pytest
import torch
from helpers import write_random_images

from fsgen_hub import cli
from fsgen_hub.auto import AutoDiscriminator, AutoGenerator
from fsgen_hub.utils.io import read_jsonl

TINY_STYLEGAN2 = json.dumps({"style_dim": 8, "n_mlp": 1, "channels": {"4": 4, "8": 4, "16": 4}})
TINY_DCGAN = json.dumps({"nz": 8, "ngf": 4, "ndf": 4})


def train(tmp_path, out, architecture, config, steps, *extra):
    data = write_random_images(tmp_path / "data", count=6)
    return cli.main(["train", "--architecture", architecture, "--resolution", "16", "--model-config", config,
                     "--data", str(data), "--steps", str(steps), "--batch-size", "2", "--save-every", "2",
                     "--sample-every", "0", "--log-every", "1", "--r1-every", "2", "--ema-half-life", "2",
                     "--device", "cpu", "--output-dir", str(out), *extra])


def test_train_stylegan2_from_scratch_writes_generator_and_discriminator(tmp_path):
    out = tmp_path / "run"
    assert train(tmp_path, out, "stylegan2", TINY_STYLEGAN2, 3) == 0
    G, D = AutoGenerator.from_pretrained(out), AutoDiscriminator.from_pretrained(out)
    assert G.architecture == "stylegan2" and G.resolution == 16
    assert D(G.sample(2, seed=0, output_type="pt") * 2 - 1).shape == (2, 1)
    lineage = json.loads((out / "lineage.json").read_text())
    assert lineage["kind"] == "trained" and lineage["base_model"]["id"] is None and "method" not in lineage
    assert lineage["data"]["shots"] == 6 and lineage["training"]["steps"] == 3
    assert lineage["data"]["shot_seed"] is None  # every image is used: no shot was drawn
    assert (out / "samples.png").is_file()
    card = (out / "README.md").read_text()
    assert "trained with the generator" in card and "base model had none" not in card and "shot seed" not in card
    # the last step is checkpointed so that a later chunk can continue
    assert (out / "checkpoint-3" / "trainer_state.json").is_file()


def test_training_in_chunks_equals_one_straight_run(tmp_path):
    straight, chunked = tmp_path / "straight", tmp_path / "chunked"
    assert train(tmp_path, straight, "dcgan", TINY_DCGAN, 6) == 0
    assert train(tmp_path, chunked, "dcgan", TINY_DCGAN, 3) == 0
    assert train(tmp_path, chunked, "dcgan", TINY_DCGAN, 6, "--resume", "latest") == 0
    a, b = AutoGenerator.from_pretrained(straight).state_dict(), AutoGenerator.from_pretrained(chunked).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    da = AutoDiscriminator.from_pretrained(straight).state_dict()
    db = AutoDiscriminator.from_pretrained(chunked).state_dict()
    assert all(torch.equal(da[k], db[k]) for k in da)
    assert [r["step"] for r in read_jsonl(chunked / "logs" / "train_log.jsonl")] == list(range(6))


@pytest.mark.parametrize("drop, message", [("--architecture", "needs --architecture"), ("--data", "needs --data")])
def test_train_without_architecture_or_data_is_a_one_line_error(tmp_path, capsys, drop, message):
    args = ["train", "--architecture", "dcgan", "--data", str(tmp_path), "--output-dir", str(tmp_path / "o")]
    i = args.index(drop)
    del args[i:i + 2]
    assert cli.main(args) != 0
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "o").exists()
