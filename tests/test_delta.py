"""Adapter-style deltas: base + delta == merged export, small files, AutoGenerator dispatch, refusal of a wrong base."""
from __future__ import annotations

import json

import pytest
import torch
from helpers import run as adapt
from helpers import save_tiny_dcgan_source, save_tiny_stylegan2_source, write_random_images
from safetensors.torch import load_file

from fsgen_hub.auto import AutoGenerator, load_delta
from fsgen_hub.methods.adapters import merge
from fsgen_hub.methods.bsa import load_latent_fit, sample_latent_fit
from fsgen_hub.utils.constants import ADAPTER_CONFIG_NAME, ADAPTER_WEIGHTS_NAME
from fsgen_hub.utils.errors import CheckpointError, ModelNotFoundError


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """Two short runs shared by the tests (training is the slow part): AdaFM on a DCGAN, BSA on a StyleGAN2."""
    tmp = tmp_path_factory.mktemp("delta")
    save_tiny_dcgan_source(tmp / "dcgan")
    save_tiny_stylegan2_source(tmp / "stylegan2", channels=8)
    write_random_images(tmp / "data")
    runs = {"adafm": run(tmp, "dcgan", "adafm", {"train": []}), "bsa": run(tmp, "stylegan2", "bsa", {"lr": 0.05})}
    return tmp, runs


def run(tmp, source, method, options, steps=3):
    return adapt(tmp / source, tmp / "data", tmp / f"{source}-{method}", method, options, steps=steps)[1]


def images(G, seed=0):
    return G.sample(4, seed=seed, output_type="pt")


@pytest.mark.parametrize("source,method", [("dcgan", "adafm"), ("stylegan2", "bsa")])
def test_delta_onto_base_equals_merged_export(setup, source, method):
    tmp, runs = setup
    out = runs[method]
    merged = AutoGenerator.from_pretrained(out)                  # the run folder: a plain merged model
    via_auto = AutoGenerator.from_pretrained(out / "adapter")    # the delta folder: base + delta, merged
    assert type(via_auto) is type(merged)
    for key, value in merged.state_dict().items():
        assert (via_auto.state_dict()[key] - value).abs().max() <= 1e-5, key
    assert (images(via_auto) - images(merged)).abs().max() <= 1e-5
    base = AutoGenerator.from_pretrained(tmp / source)
    assert (images(base) - images(merged)).abs().max() > 1e-4   # training changed something
    parametrized = load_delta(out / "adapter")                  # not merged yet: still base + parametrizations
    assert parametrized.delta_method.name == method and type(merge(parametrized)) is type(merged)
    assert (images(parametrized) - images(merged)).abs().max() <= 1e-5
    delta_size = (out / "adapter" / ADAPTER_WEIGHTS_NAME).stat().st_size
    assert delta_size < 0.3 * (out / "model.safetensors").stat().st_size
    config = json.loads((out / "adapter" / ADAPTER_CONFIG_NAME).read_text())
    assert config["method"] == method and config["base_model"]["id"] == source  # portable: name + relative path
    assert config["base_model"]["path"] == f"../../{source}" and str(tmp) not in json.dumps(config)
    assert json.loads((out / "lineage.json").read_text())["artifacts"]["adapter"] == "adapter"


def test_delta_records_what_moved_besides_the_adapter(setup):
    # DCGAN BatchNorm layers stay in training mode under AdaFM: their running statistics move and must be in
    # the delta, or base + delta would not reproduce the adapted generator
    out = setup[1]["adafm"]
    keys = set(load_file(str(out / "adapter" / ADAPTER_WEIGHTS_NAME)))
    expected = {"adapter.main.3.gamma", "adapter.main.3.beta", "base.main.1.running_mean", "base.main.4.running_var"}
    assert expected <= keys
    assert not any(k.endswith(".weight") for k in keys if k.startswith("base."))  # no frozen weight is copied


def test_bsa_latent_fit_round_trip(setup):
    out = setup[1]["bsa"]
    data = load_file(str(out / "bsa_latents.safetensors"))
    assert data["latents"].shape == (4, 8)
    mean, scale_tril = load_latent_fit(out)
    assert torch.allclose(mean, data["latents"].mean(0), atol=1e-6)
    cov = torch.cov(data["latents"].t().double()) + 1e-3 * torch.eye(8, dtype=torch.float64)
    assert torch.allclose((scale_tril.double() @ scale_tril.double().t()), cov, atol=1e-5)
    z = sample_latent_fit(mean, scale_tril, 4000, seed=0)
    assert torch.allclose(z.mean(0), mean, atol=0.01)
    assert AutoGenerator.from_pretrained(out).sample(2, z=z[:2], output_type="pt").shape == (2, 3, 16, 16)


def test_delta_refuses_another_base_and_bad_folders(setup, tiny_dcgan, tmp_path):
    import shutil

    tmp, runs = setup
    shutil.copytree(runs["adafm"] / "adapter", tmp_path / "adapter")  # this test corrupts its copy
    other = tiny_dcgan[0]
    with torch.no_grad():
        other.main[0].weight.add_(1.0)
    with pytest.raises(CheckpointError, match="differ from those the delta was trained on"):
        load_delta(tmp_path / "adapter", base=other)
    with pytest.raises(CheckpointError, match="delta is for a 'dcgan' generator"):
        load_delta(tmp_path / "adapter", base=AutoGenerator.from_pretrained(tmp / "stylegan2"))
    (tmp_path / "adapter" / ADAPTER_CONFIG_NAME).write_text("{}")
    with pytest.raises(CheckpointError, match="not an fsgen_hub delta"):
        AutoGenerator.from_pretrained(tmp_path / "adapter")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelNotFoundError):  # neither a model nor a delta: the usual error
        AutoGenerator.from_pretrained(tmp_path / "empty")


def test_delta_base_is_never_a_path_from_the_file_and_its_digest_is_required(setup, tmp_path, tiny_dcgan):
    """Issue 16 item 7: an adapter names its base by a hub/zoo id (or, locally, a path relative to itself);
    an absolute or ``..`` id is refused, and without the base digest nothing is applied."""
    import shutil

    tmp, runs = setup
    adapter = tmp_path / "adapter"
    shutil.copytree(runs["adafm"] / "adapter", adapter)
    path = adapter / ADAPTER_CONFIG_NAME
    config = json.loads(path.read_text())
    recorded = config["base_model"]
    for bad_id in [str(tmp / "dcgan"), "../dcgan", "~/dcgan", "C:\\models\\dcgan"]:
        config["base_model"] = {"id": bad_id, "sha256": recorded["sha256"]}
        path.write_text(json.dumps(config))
        with pytest.raises(CheckpointError, match="by a path"):
            load_delta(adapter)
    config["base_model"] = recorded  # local base, but this copy is not beside it: a clear error
    path.write_text(json.dumps(config))
    with pytest.raises(ModelNotFoundError):
        load_delta(adapter)
    assert isinstance(load_delta(adapter, base=str(tmp / "dcgan")), type(tiny_dcgan[0]))  # the caller may name it
    config["base_model"] = {k: v for k, v in recorded.items() if k != "sha256"}
    path.write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="records no sha256"):
        load_delta(adapter, base=tiny_dcgan[0])  # another base: never applied silently
