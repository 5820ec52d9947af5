"""The zoo: registry invariants, the offline DigiFace DCGAN and its exact match with the package's class."""
from __future__ import annotations

import pytest
import torch

from fsgen_hub import zoo
from fsgen_hub.errors import ModelNotFoundError


@pytest.mark.parametrize("model_id", zoo.list_models())
def test_entries_are_complete(model_id):
    entry = zoo.get_entry(model_id)
    assert entry.architecture in ("stylegan2", "dcgan") and entry.license and entry.paper and entry.source
    assert entry.resolution & (entry.resolution - 1) == 0


def test_unknown_zoo_id_lists_close_names():
    with pytest.raises(ModelNotFoundError, match="dcgan-digiface64"):
        zoo.get_entry("fsgen/dcgan-digiface")


def test_digiface_matches_the_packages_own_generator(tmp_path, monkeypatch):
    pytest.importorskip("gan_face_generate")
    from gan_face_generate.models import Generator

    from fsgen_hub.hub import AutoGenerator, read_lineage

    monkeypatch.setenv("FSGEN_HOME", str(tmp_path))
    G = AutoGenerator.from_pretrained(zoo.DEFAULT_SOURCE)
    assert (tmp_path / "zoo").is_dir()  # converted into the cache on first use
    reference = Generator(0, 3, 100, 64)
    state = torch.load(zoo.digiface_weights_path(), map_location="cpu", weights_only=True)["netG_state_dict"]
    reference.load_state_dict(state)
    reference.eval()
    z = torch.randn(4, 100, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert (G(z) - reference(z[:, :, None, None])).abs().max() <= 1e-5
    lineage = read_lineage(zoo.resolve_local(zoo.DEFAULT_SOURCE))
    assert lineage["discriminator"] == "absent" and lineage["base_model"]["license"] == "mit"
