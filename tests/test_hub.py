"""Hub folders: exact round trips, offline loading, unknown ids and bad inputs as one-line CLI errors."""
from __future__ import annotations

import json

import pytest
import torch
from helpers import fsgen_cli as run_cli

from fsgen_hub.auto import AutoDiscriminator, AutoGenerator
from fsgen_hub.utils.errors import CheckpointError, ModelNotFoundError, OfflineError


def test_round_trip_is_exact(tmp_path, tiny_dcgan):
    G, D = tiny_dcgan
    G.save_pretrained(tmp_path / "m", discriminator=D)
    G2, D2 = AutoGenerator.from_pretrained(tmp_path / "m"), AutoDiscriminator.from_pretrained(tmp_path / "m")
    for a, b in [(G, G2), (D, D2)]:
        assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    assert torch.equal(G.sample(4, seed=3, output_type="pt"), G2.sample(4, seed=3, output_type="pt"))
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert config["architecture"] == "dcgan" and config["role"] == "generator" and "fsgen_hub_version" in config


def test_sample_is_deterministic_per_seed(tiny_dcgan):
    G, _ = tiny_dcgan
    a, b = G.sample(3, seed=1, output_type="pt"), G.sample(3, seed=1, output_type="pt")
    assert torch.equal(a, b) and not torch.equal(a, G.sample(3, seed=2, output_type="pt"))
    images = G.sample(2, seed=1)
    assert len(images) == 2 and images[0].size == (16, 16)
    assert G.sample(2, seed=1, output_type="np").shape == (2, 16, 16, 3)


def test_local_folder_loads_with_hub_offline(tmp_path, tiny_dcgan):
    G, _ = tiny_dcgan
    G.save_pretrained(tmp_path / "m")
    result = run_cli("sample", str(tmp_path / "m"), "--num", "2", "--out", str(tmp_path / "s.png"))
    assert result.returncode == 0, result.stderr
    from PIL import Image

    assert Image.open(tmp_path / "s.png").size == (2 * 16 + 3 * 2, 16 + 2 * 2)


def test_unknown_ids_name_what_was_tried(tmp_path, monkeypatch):
    import huggingface_hub.constants as constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(OfflineError, match="not a local folder or zoo id.*offline"):
        AutoGenerator.from_pretrained("someone/not-a-model")
    with pytest.raises(ModelNotFoundError, match="no model folder"):
        AutoGenerator.from_pretrained(str(tmp_path / "missing" / "dir"))
    with pytest.raises(OfflineError, match="Did you mean: fsgen/dcgan-digiface64"):
        AutoGenerator.from_pretrained("fsgen/dcgan-digiface46")


def test_truncated_safetensors_is_a_clear_error(tmp_path, tiny_dcgan):
    G, _ = tiny_dcgan
    G.save_pretrained(tmp_path / "m")
    weights = tmp_path / "m" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        AutoGenerator.from_pretrained(tmp_path / "m")
    result = run_cli("sample", str(tmp_path / "m"), "--out", str(tmp_path / "s.png"))
    assert result.returncode == 2 and result.stderr.strip().count("\n") == 0 and "error:" in result.stderr
    assert not (tmp_path / "s.png").exists()


def test_config_weight_shape_mismatch(tmp_path, tiny_dcgan):
    G, _ = tiny_dcgan
    G.save_pretrained(tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    config["ngf"] = 6
    (tmp_path / "m" / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="shape|does not match"):
        AutoGenerator.from_pretrained(tmp_path / "m")


def test_non_power_of_two_resolution_in_config(tmp_path, tiny_dcgan):
    G, _ = tiny_dcgan
    G.save_pretrained(tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    config["resolution"] = 24
    (tmp_path / "m" / "config.json").write_text(json.dumps(config))
    result = run_cli("sample", str(tmp_path / "m"), "--out", str(tmp_path / "s.png"))
    assert result.returncode == 2 and "power of two" in result.stderr and "Traceback" not in result.stderr


def test_missing_weights_file(tmp_path, tiny_dcgan):
    G, _ = tiny_dcgan
    G.save_pretrained(tmp_path / "m")
    (tmp_path / "m" / "model.safetensors").unlink()
    with pytest.raises(ModelNotFoundError, match="model.safetensors is missing"):
        AutoGenerator.from_pretrained(tmp_path / "m")
