"""Image loading: modes converted to RGB, crops, shots, datasets formats and errors."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from fsgen_hub.data import load_images, read_raw_images
from fsgen_hub.utils.errors import DataError


def test_modes_become_rgb_in_range(tmp_path):
    Image.new("L", (40, 30), 128).save(tmp_path / "gray.png")
    Image.new("RGBA", (30, 40), (255, 0, 0, 0)).save(tmp_path / "transparent.png")  # fully transparent → white
    Image.new("P", (32, 32)).save(tmp_path / "palette.png")
    Image.fromarray(np.full((32, 32), 65535, dtype=np.uint16)).save(tmp_path / "sixteen.png")
    images, records = load_images(tmp_path, 16)
    assert images.shape == (4, 3, 16, 16) and images.min() >= -1 and images.max() <= 1
    by_name = {r["name"]: images[i] for i, r in enumerate(records)}
    assert torch.allclose(by_name["transparent.png"], torch.ones(3, 16, 16))
    assert torch.allclose(by_name["sixteen.png"], torch.ones(3, 16, 16))
    assert abs(by_name["gray.png"].mean().item() - (128 / 127.5 - 1)) < 1e-3


def test_shots_are_reproducible_and_recorded(tmp_path):
    for i in range(8):
        Image.new("RGB", (16, 16), (i * 30, 0, 0)).save(tmp_path / f"{i}.png")
    _, a = load_images(tmp_path, 16, shots=3, shot_seed=5)
    _, b = load_images(tmp_path, 16, shots=3, shot_seed=5)
    _, c = load_images(tmp_path, 16, shots=3, shot_seed=6)
    assert a == b and a != c and len(a) == 3
    with pytest.raises(DataError, match="only 8 images"):
        load_images(tmp_path, 16, shots=9)


def test_embedded_target_ships_ten_images():
    images, records, data_id = load_images(None, 32, shots=10, return_id=True)
    assert images.shape == (10, 3, 32, 32) and "emoji" in data_id


def test_parquet_and_saved_dataset(tmp_path):
    import datasets

    for i in range(3):
        Image.new("RGB", (20, 20), (0, i * 60, 0)).save(tmp_path / f"{i}.png")
    ds = datasets.Dataset.from_dict({"picture": [str(tmp_path / f"{i}.png") for i in range(3)]}).cast_column("picture", datasets.Image())
    ds.to_parquet(str(tmp_path / "d.parquet"))
    ds.save_to_disk(str(tmp_path / "saved"))
    assert load_images(tmp_path / "d.parquet", 16)[0].shape == (3, 3, 16, 16)
    assert load_images(tmp_path / "saved", 16)[0].shape == (3, 3, 16, 16)
    with pytest.raises(DataError, match="no column 'nope'"):
        load_images(tmp_path / "saved", 16, image_column="nope")


def test_errors(tmp_path):
    with pytest.raises(DataError, match="no images"):
        load_images(tmp_path, 16)
    with pytest.raises(DataError, match="no folder or file"):
        read_raw_images(str(tmp_path / "missing" / "x"))


def test_offline_hub_dataset_says_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import huggingface_hub.constants as constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    import datasets.config

    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True, raising=False)
    from fsgen_hub.utils.errors import OfflineError

    with pytest.raises((OfflineError, DataError), match="offline|not cached|no dataset"):
        load_images("someone/ten-sketches", 16)
