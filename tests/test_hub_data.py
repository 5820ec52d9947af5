"""Datasets as `datasets` users pass them: parquet shards, configs, splits, revisions, hub ids from the local cache."""
from __future__ import annotations

import io
import json
import shutil

import pytest
import torch
from PIL import Image

import fsgen_hub.data as data_module
from fsgen_hub.data import load_images
from fsgen_hub.utils.errors import DataError

PETS_CARD = """---
configs:
- config_name: cats
  data_files:
  - split: train
    path: cats/train-*.parquet
  - split: test
    path: cats/test-*.parquet
- config_name: dogs
  data_files:
  - split: train
    path: dogs/train-*.parquet
---
"""


@pytest.fixture(autouse=True)
def datasets_cache(tmp_path, monkeypatch):
    """datasets caches what it loads: keep it out of the user's ~/.cache."""
    import datasets.config

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "datasets_cache")
    return tmp_path / "datasets_cache"


def _png(value: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (20, 20), (value, 255 - value, 7)).save(buffer, format="PNG")
    return buffer.getvalue()


def write_shards(folder, prefix: str, shards: int, per_shard: int, start: int):
    """Parquet shards named as in a hub dataset repo (train-00000-of-00002.parquet ...)."""
    import datasets

    folder.mkdir(parents=True, exist_ok=True)
    value = start
    for shard in range(shards):
        rows = []
        for _ in range(per_shard):
            rows.append({"bytes": _png(value), "path": f"{prefix}{value:03d}.png"})
            value += 1
        ds = datasets.Dataset.from_dict({"picture": rows, "label": [0] * per_shard})
        ds.cast_column("picture", datasets.Image()).to_parquet(str(folder / f"{prefix}-{shard:05d}-of-{shards:05d}.parquet"))


def make_pets_repo(root):
    """A dataset repo as on the hub: README configs, cats (train in 2 shards, test) and dogs."""
    root.mkdir(parents=True)
    (root / "README.md").write_text(PETS_CARD)
    write_shards(root / "cats", "train", shards=2, per_shard=3, start=0)
    write_shards(root / "cats", "test", shards=1, per_shard=2, start=100)
    write_shards(root / "dogs", "train", shards=1, per_shard=4, start=200)
    return root


def test_every_shard_is_read_and_splits_are_chosen(tmp_path):
    folder = tmp_path / "shards"
    write_shards(folder / "data", "train", shards=3, per_shard=2, start=0)
    write_shards(folder / "data", "test", shards=1, per_shard=2, start=50)
    images, records = load_images(folder, 16)
    assert len(records) == 6 and images.shape == (6, 3, 16, 16)  # all three train shards, not the first one
    assert {r["name"] for r in records} == {f"train{i:03d}.png" for i in range(6)}
    _, test_records = load_images(folder, 16, split="test")
    assert [r["name"] for r in test_records] == ["test050.png", "test051.png"]
    with pytest.raises(DataError, match="cannot load .*split"):
        load_images(folder, 16, split="validation")


def test_shots_are_drawn_before_decoding(tmp_path, monkeypatch):
    import datasets

    folder = tmp_path / "shards"
    write_shards(folder / "data", "train", shards=2, per_shard=5, start=0)
    decoded = []
    real_decode = data_module.decode
    monkeypatch.setattr(data_module, "decode", lambda raw, res: decoded.append(raw.name) or real_decode(raw, res))
    _, records = load_images(folder, 16, shots=3, shot_seed=4)
    assert len(decoded) == 3  # only the shots were decoded, not the 10 images
    expected = datasets.load_dataset(str(folder), split="train").shuffle(seed=4).select(range(3))
    assert [r["name"] for r in records] == [row["path"] for row in expected.cast_column("picture", datasets.Image(decode=False))["picture"]]
    _, again = load_images(folder, 16, shots=3, shot_seed=4)
    _, other = load_images(folder, 16, shots=3, shot_seed=5)
    assert again == records and other != records
    with pytest.raises(DataError, match="only 10 images"):
        load_images(folder, 16, shots=11)


def test_hub_id_config_split_and_revision_reach_load_dataset(monkeypatch):
    import datasets

    calls = []
    tiny = datasets.Dataset.from_dict({"image": [{"bytes": _png(i), "path": f"{i}.png"} for i in range(5)]}) \
        .cast_column("image", datasets.Image())

    def fake_load_dataset(path, **kwargs):
        calls.append((path, kwargs))
        return tiny

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    images, records = load_images("huggan/few-shot-x", 16, shots=2, shot_seed=1, config="dogs", split="test",
                                  revision="v1.0")
    assert calls == [("huggan/few-shot-x", {"name": "dogs", "split": "test", "revision": "v1.0"})]
    assert images.shape == (2, 3, 16, 16) and len(records) == 2


def test_hub_dataset_from_the_local_cache_offline(tmp_path, monkeypatch, datasets_cache):
    """`--data huggan/few-shot-pets` with HF_HUB_OFFLINE=1 reads what an earlier load left in the datasets cache."""
    import datasets
    import datasets.config
    import huggingface_hub.constants

    cache = datasets_cache
    repo = make_pets_repo(tmp_path / "few-shot-pets")
    online = {cfg: datasets.load_dataset(str(repo), name=cfg) for cfg in ("cats", "dogs")}  # what a first load caches
    # the cache of a hub load lives under <namespace>___<name>; the local load above used the folder's name
    shutil.move(str(cache / "few-shot-pets"), str(cache / "huggan___few-shot-pets"))
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)

    images, records = load_images("huggan/few-shot-pets", 16, config="cats", split="test")
    assert [r["name"] for r in records] == ["test100.png", "test101.png"]
    expected = online["cats"]["test"].cast_column("picture", datasets.Image(decode=False))["picture"]
    assert torch.equal(images[0], data_module.decode(data_module.RawImage("x", expected[0]["bytes"]), 16))
    _, dogs = load_images("huggan/few-shot-pets", 16, config="dogs", shots=2, shot_seed=0)
    assert len(dogs) == 2 and all(r["name"].startswith("train2") for r in dogs)
    with pytest.raises(DataError):
        load_images("huggan/few-shot-pets", 16, config="birds")


def test_adapt_on_a_hub_dataset_records_config_and_split(tmp_path):
    from helpers import save_tiny_dcgan_source
    from huggingface_hub import ModelCard

    from fsgen_hub.cli import main as cli_main

    repo = make_pets_repo(tmp_path / "few-shot-pets")
    source = save_tiny_dcgan_source(tmp_path / "source")
    assert cli_main(["adapt", "--source", str(source), "--data", str(repo), "--data-config", "cats", "--data-split",
                     "test", "--image-column", "picture", "--shots", "2", "--method", "finetune", "--steps", "1",
                     "--batch-size", "2", "--no-eval", "--report-to", "none", "--save-every", "0", "--sample-every", "0",
                     "--device", "cpu", "--output-dir", str(tmp_path / "run")]) == 0
    data = json.loads((tmp_path / "run" / "lineage.json").read_text())["data"]
    assert data["config"] == "cats" and data["split"] == "test" and data["image_column"] == "picture"
    assert sorted(f["name"] for f in data["files"]) == ["test100.png", "test101.png"]
    assert "config `cats`, split `test`" in ModelCard.load(tmp_path / "run" / "README.md").text
