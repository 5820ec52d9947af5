"""The zoo: registry invariants, the offline DigiFace DCGAN and its exact match with the package's class."""
from __future__ import annotations

import pytest
import torch

from fsgen_hub import zoo
from fsgen_hub.folder import weights_sha256
from fsgen_hub.utils.errors import ModelNotFoundError


@pytest.mark.parametrize("model_id", zoo.list_models())
def test_entries_are_complete(model_id):
    entry = zoo.get_entry(model_id)
    assert entry.architecture in ("stylegan2", "dcgan") and entry.license and entry.paper and entry.source
    assert entry.resolution & (entry.resolution - 1) == 0


def test_unknown_zoo_id_lists_close_names():
    with pytest.raises(ModelNotFoundError, match="dcgan-digiface64"):
        zoo.get_entry("fsgen/dcgan-digiface")


def test_digiface_matches_the_packages_own_generator(tmp_path, monkeypatch):
    from gan_face_generate.models import Generator

    from fsgen_hub.auto import AutoGenerator
    from fsgen_hub.folder import read_lineage

    monkeypatch.setenv("FSGEN_HOME", str(tmp_path))
    G = AutoGenerator.from_pretrained(zoo.DIGIFACE_SOURCE)
    assert (tmp_path / "zoo").is_dir()  # converted into the cache on first use
    reference = Generator(0, 3, 100, 64)
    state = torch.load(zoo.digiface_weights_path(), map_location="cpu", weights_only=True)["netG_state_dict"]
    reference.load_state_dict(state)
    reference.eval()
    z = torch.randn(4, 100, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert (G(z) - reference(z[:, :, None, None])).abs().max() <= 1e-5
    lineage = read_lineage(zoo.resolve_local(zoo.DIGIFACE_SOURCE))
    assert lineage["discriminator"] == "absent" and lineage["base_model"]["license"] == "mit"


def test_faces64_source_ships_with_its_discriminator_card_and_terms(tmp_path):
    """The project's own StyleGAN2 faces source resolves offline, within the size budget, with D and the data terms."""
    import json

    from helpers import write_random_images

    from fsgen_hub.auto import AutoDiscriminator, AutoGenerator
    from fsgen_hub.training.arguments import TrainingArguments
    from fsgen_hub.training.trainer import AdaptationTrainer
    from fsgen_hub.utils.io import read_jsonl

    model_id = "fsgen/stylegan2-faces64"
    folder = zoo.resolve_local(model_id)
    assert folder is not None, "fsgen_hub/assets/stylegan2-faces64 is missing: scripts/build_faces64_source.py exports it"
    assert sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) <= 25 * 2**20
    G, D = AutoGenerator.from_pretrained(model_id), AutoDiscriminator.from_pretrained(model_id)
    assert G.architecture == "stylegan2" and G.resolution == 64 and next(G.parameters()).dtype == torch.float32
    images = G.sample(2, seed=0, output_type="pt")
    assert images.shape == (2, 3, 64, 64) and torch.isfinite(images).all()
    assert D(images * 2 - 1).shape == (2, 1)
    lineage = json.loads((folder / "lineage.json").read_text())
    assert lineage["kind"] == "trained" and "faces64" in str(lineage["data"]["id"]) and lineage["data"]["shots"] == 23317
    assert lineage["training"]["steps"] > 0 and lineage["training"]["wall_time_s"] > 0 and lineage["status"]
    card = (folder / "README.md").read_text()
    assert "non-commercial" in card and "UTKFace" in card and "Status" in card
    assert 'from_pretrained("fsgen/stylegan2-faces64")' in card  # titled and loaded by its zoo id
    swd = read_jsonl(folder / "metrics.jsonl")  # the SWD of every measured step, the shipped step's last
    assert {r["metric"] for r in swd} == {"swd"} and swd[-1]["step"] == json.loads((folder / "lineage.json").read_text())["training"]["steps"]
    assert [r["step"] for r in swd] == sorted({r["step"] for r in swd})
    # methods that need the source D get it: a 2-step FreezeD run starts from the shipped discriminator
    args = TrainingArguments(source=model_id, data=str(write_random_images(tmp_path / "data", size=64)), shots=4,
                             method="freezed", steps=2, batch_size=2, output_dir=str(tmp_path / "run"), save_every=0,
                             sample_every=0, device="cpu")
    out = AdaptationTrainer(args).train()
    lineage = json.loads((out / "lineage.json").read_text())
    assert lineage["training"]["discriminator"] == "source" and lineage["base_model"]["id"] == model_id
    assert lineage["base_model"]["sha256"] == weights_sha256(folder)  # which weights the zoo id named then
    assert "non-commercial" in lineage["base_model"].get("data_terms", "")
