"""Adapter I/O (PEFT's ``utils/save_and_load.py``): the delta files of modulation methods (AdaFM, BSA).

A modulation method's training result is fully described by the base model + a few tensors, saved PEFT-style::

    adapter_config.json        {"format": "fsgen_hub-delta", "format_version": 1, "method": "adafm",
                                "config": {...}, "architecture": "dcgan", "base_config": {...},
                                "base_model": {"id", "revision", "commit", "sha256"}, "fsgen_hub_version"}
    adapter_model.safetensors  "adapter.<name>": the method's tensors (γ/β, scale/shift, BSA latents)
                               "base.<state key>": base tensors that moved during training: the layers a
                               method trains in full (AdaFM's unmodulated first block) and BatchNorm
                               running statistics. Found by comparing with a snapshot of the base, so
                               base + delta reproduces the adapted generator exactly.

``base_model.sha256`` is a digest of the base weights; applying onto a different base is refused.

- ``save_delta(method, G, folder)`` writes both files atomically;
- ``apply_delta(base, config, weights_file)`` returns the *parametrized* base (``G.delta_method`` is the method);
- ``merge(G)`` returns a new plain generator of the base class with them baked in (same state-dict keys);
- ``fsgen_hub.auto.load_delta(folder_or_id)`` resolves the files and the recorded base model, and
  ``AutoGenerator.from_pretrained(delta_folder)`` returns ``merge(load_delta(delta_folder))``.

The trainer's run folder stays a plain merged model (``method.export`` bakes a copy of the EMA generator);
``write_artifacts`` puts the delta beside it as ``<run>/adapter/``.
"""
from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from fsgen_hub.methods.base import get_method
from fsgen_hub.methods.delta import adapter_tensors, bake, plain_state, set_adapter_tensors, weights_digest
from fsgen_hub.utils.constants import ADAPTER_CONFIG_NAME, ADAPTER_WEIGHTS_NAME, __version__
from fsgen_hub.utils.errors import CheckpointError, FsgenError

DELTA_FORMAT = "fsgen_hub-delta"
DELTA_FORMAT_VERSION = 1


def delta_tensors(method, model: nn.Module) -> dict[str, torch.Tensor]:
    tensors = {f"adapter.{k}": v for k, v in adapter_tensors(model).items()}
    tensors.update({f"adapter.{k}": v for k, v in method.extra_adapter_tensors().items()})
    base_state = getattr(method, "base_state", None)
    if base_state is None:
        raise FsgenError("the method has no base snapshot: call snapshot_base(ctx) in prepare before saving a delta")
    for key, value in plain_state(model).items():
        if key not in base_state:
            raise CheckpointError(f"{key} is not in the base model: the delta cannot describe this generator")
        if not torch.equal(value.detach().cpu(), base_state[key]):
            tensors[f"base.{key}"] = value
    return {k: v.detach().contiguous().cpu() for k, v in tensors.items()}


def save_delta(method, model: nn.Module, folder) -> Path:
    """Write ``adapter_config.json`` + ``adapter_model.safetensors`` for ``model`` (parametrized by ``method``)."""
    from safetensors.torch import save_file

    from fsgen_hub.utils.io import atomic_dir, write_json

    folder = Path(folder)
    tensors = delta_tensors(method, model)
    config = {
        "format": DELTA_FORMAT,
        "format_version": DELTA_FORMAT_VERSION,
        "fsgen_hub_version": __version__,
        "method": method.name,
        "config": method.config.to_dict(),
        "paper": method.paper,
        "architecture": model.architecture,
        "base_config": model.config.to_dict(),
        "base_model": dict(method.base_model),
        "tensors": {"adapter": sum(k.startswith("adapter.") for k in tensors),
                    "base": sum(k.startswith("base.") for k in tensors)},
    }
    with atomic_dir(folder) as tmp:  # both files appear together or not at all
        save_file(tensors, str(tmp / ADAPTER_WEIGHTS_NAME), metadata={"format": "pt", "fsgen_hub_version": __version__})
        write_json(tmp / ADAPTER_CONFIG_NAME, config)
    return folder


def read_delta_config(path) -> dict[str, Any]:
    try:
        config = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"cannot read {path}: {exc}") from None
    if not isinstance(config, dict) or config.get("format") != DELTA_FORMAT:
        raise CheckpointError(f"{path} is not an fsgen_hub delta (format {DELTA_FORMAT!r} expected)")
    if config.get("format_version", 0) > DELTA_FORMAT_VERSION:
        raise CheckpointError(f"{path} needs a newer fsgen_hub (delta format {config['format_version']}): upgrade it")
    for field in ("method", "architecture", "base_model"):
        if field not in config:
            raise CheckpointError(f"{path} lacks {field!r}: re-export the delta")
    return config


def recorded_base(config: dict[str, Any], config_path) -> dict[str, Any]:
    """The ``base_model`` record of a delta config, which must carry the sha256 of the base weights."""
    recorded = config["base_model"] if isinstance(config["base_model"], dict) else {}
    digest = recorded.get("sha256")
    if not isinstance(digest, str) or len(digest) != 64:
        raise CheckpointError(f"{config_path} records no sha256 of its base weights: the delta cannot be "
                              "checked against a base, re-export it with this fsgen_hub")
    return recorded


def apply_delta(base: nn.Module, config: dict[str, Any], weights_file, *, config_path) -> nn.Module:
    """A copy of ``base`` with the delta (``config`` read by ``read_delta_config``, tensors in ``weights_file``)
    attached as parametrizations. The base's weights must be the ones the delta was trained on (digest check)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    recorded = recorded_base(config, config_path)
    base = copy.deepcopy(base)  # the caller's generator stays as it was
    if getattr(base, "architecture", None) != config["architecture"]:
        raise CheckpointError(f"the delta is for a {config['architecture']!r} generator, the base is "
                              f"{getattr(base, 'architecture', type(base).__name__)!r}: pass the matching base")
    if weights_digest(base) != recorded["sha256"]:
        raise CheckpointError(f"the base weights differ from those the delta was trained on ({recorded.get('id')}, "
                              f"revision {recorded.get('revision')}): pass the exact base model")
    method = get_method(config["method"], config.get("config"))
    if not getattr(method, "supports_delta", False):
        raise CheckpointError(f"method {config['method']!r} does not support deltas")
    try:
        tensors = load_file(str(weights_file))
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"cannot read {weights_file}: {str(exc).splitlines()[0]}") from None
    overrides = {k[len("base."):]: v for k, v in tensors.items() if k.startswith("base.")}
    adapter = {k[len("adapter."):]: v for k, v in tensors.items() if k.startswith("adapter.")}
    own = base.state_dict()
    unknown = sorted(k for k in overrides if k not in own or own[k].shape != overrides[k].shape)
    if unknown:
        raise CheckpointError(f"{weights_file} overrides tensors the base lacks: {unknown[:3]}")
    with torch.no_grad():
        for key, value in overrides.items():
            own[key].copy_(value)
    method.attach(base)
    in_model = set(adapter_tensors(base))
    set_adapter_tensors(base, {k: v for k, v in adapter.items() if k in in_model}, source=str(weights_file))
    method.load_extra_adapter_tensors({k: v for k, v in adapter.items() if k not in in_model})
    base.eval().requires_grad_(False)
    base.delta_method = method
    return base


def recorded_base_id(recorded: dict, folder_or_id, config_path) -> str:
    """The base model an adapter names: a hub or zoo id, or, for an adapter in a local folder, its recorded path
    relative to that folder. Absolute paths and ``..`` in ids are refused: an adapter downloaded from the hub
    must not make the loader read arbitrary local folders."""
    base_id, path = recorded.get("id"), recorded.get("path")
    local_adapter = Path(str(folder_or_id)).expanduser().is_dir()
    if recorded.get("local"):
        if not local_adapter or not isinstance(path, str) or not path or Path(path).is_absolute():
            raise CheckpointError(f"{config_path} was trained on a local base model ({base_id!r}) that is not available "
                                  "here: pass base=<that model's folder or id>")
        return str((Path(str(folder_or_id)).expanduser() / path).resolve())
    if not isinstance(base_id, str) or not base_id:
        raise CheckpointError(f"{config_path} records no base model: pass base=<id or generator>")
    if base_id.startswith(("/", "~", "\\")) or ".." in base_id.replace("\\", "/").split("/") or ":" in base_id:
        raise CheckpointError(f"{config_path} names its base model by a path ({base_id!r}), which is not followed: "
                              "pass base=<id or generator>")
    return base_id


def merge(model: nn.Module) -> nn.Module:
    """A plain generator of the base class from a delta-loaded (or method-parametrized) generator."""
    return bake(model).eval()
