"""The NVlabs pickle loader on pickles built here in the documented structure, and its refusal of code."""
from __future__ import annotations

import collections
import json
import os
import pickle
import sys
import types

import pytest
import torch
from helpers import PARITY_ATOL

from fsgen_hub.models.convert_stylegan2 import convert_nvlabs, load_nvlabs_pickle
from fsgen_hub.utils.errors import CheckpointError


@pytest.fixture
def fake_torch_utils(monkeypatch):
    """A stand-in `torch_utils.persistence` so that pickle can name its reconstruct function."""
    package, module = types.ModuleType("torch_utils"), types.ModuleType("torch_utils.persistence")

    def _reconstruct_persistent_obj(meta):  # never called by the loader under test
        raise AssertionError("the real reconstruct function must not run")

    _reconstruct_persistent_obj.__module__ = "torch_utils.persistence"
    _reconstruct_persistent_obj.__qualname__ = "_reconstruct_persistent_obj"
    module._reconstruct_persistent_obj = _reconstruct_persistent_obj
    package.persistence = module
    monkeypatch.setitem(sys.modules, "torch_utils", package)
    monkeypatch.setitem(sys.modules, "torch_utils.persistence", module)
    return module


class Persistent:
    """Pickles like an NVlabs persistent_class instance: (_reconstruct_persistent_obj, (meta,))."""

    def __init__(self, class_name, state, reconstruct):
        self.meta = dict(type="class", version=4, module_src="import os\nos.system('echo pwned')\n",
                         class_name=class_name, state=state)
        self.reconstruct = reconstruct

    def __reduce__(self):
        return self.reconstruct, (self.meta,)


def build_tree(flat: dict[str, torch.Tensor], class_name: str, reconstruct, attrs: dict):
    """Nest a flat NVlabs state dict into persistent records (one per module), like the real pickles."""
    children: dict[str, dict] = collections.defaultdict(dict)
    params, buffers = collections.OrderedDict(), collections.OrderedDict()
    for key, value in flat.items():
        head, _, rest = key.partition(".")
        if rest:
            children[head][rest] = value
        elif head in ("w_avg", "noise_const", "resample_filter"):
            buffers[head] = value
        else:
            params[head] = torch.nn.Parameter(value)
    modules = collections.OrderedDict(
        (name, build_tree(sub, name, reconstruct, {})) for name, sub in children.items()
    )
    state = {"training": False, "_parameters": params, "_buffers": buffers, "_modules": modules,
             "_non_persistent_buffers_set": set(), **attrs}
    return Persistent(class_name, state, reconstruct)


def test_pickle_in_documented_structure_converts_exactly(tmp_path, shared_dir, fake_torch_utils):
    from safetensors.torch import load_file

    fixture = shared_dir / "fixtures" / "stylegan2ada_32"
    kwargs = json.loads((fixture / "init_kwargs.json").read_text())
    reconstruct = fake_torch_utils._reconstruct_persistent_obj
    G = build_tree(load_file(fixture / "G_ema.safetensors"), "Generator", reconstruct,
                   {"_init_kwargs": kwargs["G_ema_init_kwargs"], "z_dim": 64, "img_resolution": 32})
    D = build_tree(load_file(fixture / "D.safetensors"), "Discriminator", reconstruct,
                   {"_init_kwargs": kwargs["D_init_kwargs"], "img_resolution": 32})
    path = tmp_path / "network-snapshot.pkl"
    with open(path, "wb") as f:
        pickle.dump({"G": G, "D": D, "G_ema": G, "augment_pipe": None, "training_set_kwargs": {"resolution": 32}}, f)

    records = load_nvlabs_pickle(path)
    assert records["G_ema"].class_name == "Generator"
    assert "synthesis" in records["G_ema"].state["_modules"]  # nested module tree rebuilt as records

    G_conv, D_conv, info = convert_nvlabs(path)
    ref = torch.load(fixture / "reference.pt", weights_only=True)
    with torch.no_grad():
        assert (G_conv(ref["z"], noise_mode="const") - ref["img"]).abs().max() <= PARITY_ATOL
        assert (D_conv(ref["img"]) - ref["d_logits"]).abs().max() <= PARITY_ATOL
    assert info["generator_key"] == "G_ema"


class Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_pickle_with_code_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"G_ema": Exploit(marker)}))
    with pytest.raises(CheckpointError, match=r"refused to unpickle global (posix|os)\.system"):
        load_nvlabs_pickle(path)
    assert not marker.exists()


@pytest.mark.parametrize("payload,message", [(b"not a pickle", "cannot read"), (pickle.dumps([1, 2]), "not an NVlabs")])
def test_bad_pickles_are_clear_errors(tmp_path, payload, message):
    path = tmp_path / "bad.pkl"
    path.write_bytes(payload)
    with pytest.raises(CheckpointError, match=message):
        load_nvlabs_pickle(path)
