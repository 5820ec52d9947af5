"""Adapter-style deltas for modulation methods (AdaFM, BSA): what they add, how it is saved, loaded and merged.

Modulation methods leave the source generator's tensors untouched and add small parametrizations
(``torch.nn.utils.parametrize``) on some of them: AdaFM's per-kernel γ/β, BSA's per-channel scale/shift.
Their training result is therefore fully described by the base model + a few tensors, saved PEFT-style::

    adapter_config.json        {"format": "fsgen_hub-delta", "format_version": 1, "method": "adafm",
                                "config": {...}, "architecture": "dcgan", "base_config": {...},
                                "base_model": {"id", "revision", "commit", "sha256"}, "fsgen_hub_version"}
    adapter_model.safetensors  "adapter.<name>": the method's tensors (γ/β, scale/shift, BSA latents)
                               "base.<state key>": base tensors that moved during training: the layers a
                               method trains in full (AdaFM's unmodulated first block) and BatchNorm
                               running statistics. Found by comparing with a snapshot of the base, so
                               base + delta reproduces the adapted generator exactly.

``base_model.sha256`` is a digest of the base weights; loading onto a different base is refused.

- ``load_delta(folder_or_id, base=None)`` loads the base (by the recorded id unless ``base`` is given),
  applies the delta and returns the *parametrized* generator (``G.delta_method`` is the method);
- ``merge(G)`` returns a new plain generator of the base class with them baked in (same state-dict keys);
- ``AutoGenerator.from_pretrained(delta_folder)`` returns ``merge(load_delta(delta_folder))``.

The trainer's run folder stays a plain merged model (``method.export`` bakes a copy of the EMA generator);
``write_artifacts`` puts the delta beside it as ``<run>/adapter/``.
"""
from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.utils import parametrize

from fsgen_hub.methods.base import AdaptationMethod, AdaptContext
from fsgen_hub.utils.errors import CheckpointError, FsgenError

logger = logging.getLogger(__name__)

ADAPTER_CONFIG_NAME = "adapter_config.json"
ADAPTER_WEIGHTS_NAME = "adapter_model.safetensors"
ADAPTER_SUBFOLDER = "adapter"
DELTA_FORMAT = "fsgen_hub-delta"
DELTA_FORMAT_VERSION = 1


# ----------------------------------------------------------------------------- parametrizations
class AdapterParametrization(nn.Module):
    """Base of the parametrizations a modulation method registers; ``key`` names its tensors in the delta.

    Two parametrizations may share a parameter (BSA's scale acts on a BN weight and bias): they then carry
    the same ``key`` and parameter name, and the delta stores it once.
    """

    def __init__(self, key: str):
        super().__init__()
        self.key = key


def register(module: nn.Module, tensor_name: str, parametrization: AdapterParametrization) -> None:
    parametrize.register_parametrization(module, tensor_name, parametrization)


def split_name(model: nn.Module, dotted: str) -> tuple[nn.Module, str]:
    """``"convs.1.conv.modulation.weight"`` → (the modulation module, "weight")."""
    path, _, attr = dotted.rpartition(".")
    try:
        module = model.get_submodule(path) if path else model
    except AttributeError:
        raise FsgenError(f"{type(model).__name__} has no module {path!r}") from None
    return module, attr


def adapter_parametrizations(model: nn.Module) -> list[AdapterParametrization]:
    return [m for m in model.modules() if isinstance(m, AdapterParametrization)]


def adapter_tensors(model: nn.Module) -> dict[str, torch.Tensor]:
    """{"<key>.<param>": tensor} of every adapter parametrization in ``model`` (shared ones once)."""
    out: dict[str, torch.Tensor] = {}
    for p in adapter_parametrizations(model):
        for name, param in p.named_parameters(recurse=False):
            out[f"{p.key}.{name}"] = param
    return out


@torch.no_grad()
def set_adapter_tensors(model: nn.Module, tensors: dict[str, torch.Tensor], source: str = "the delta") -> None:
    own = adapter_tensors(model)
    missing, unexpected = sorted(set(own) - set(tensors)), sorted(set(tensors) - set(own))
    if missing or unexpected:
        raise CheckpointError(
            f"{source} does not match the method's layers: missing {missing[:3]}, unexpected {unexpected[:3]} "
            "(was it saved with other method options or another base?)"
        )
    for key, param in own.items():
        if tuple(tensors[key].shape) != tuple(param.shape):
            raise CheckpointError(
                f"{source}: {key} has shape {tuple(tensors[key].shape)}, expected {tuple(param.shape)}")
        param.copy_(tensors[key].to(param.device, param.dtype))


@torch.no_grad()
def baked_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The state dict under the base model's keys with every adapter parametrization evaluated (W' instead of W)."""
    state = dict(plain_state(model))
    for path, module in model.named_modules():
        if not parametrize.is_parametrized(module):
            continue
        for tensor_name in module.parametrizations:
            if any(isinstance(p, AdapterParametrization) for p in module.parametrizations[tensor_name]):
                state[f"{path}.{tensor_name}" if path else tensor_name] = getattr(module, tensor_name).detach().clone()
    return state


def bake(model: nn.Module) -> nn.Module:
    """A new plain generator of the model's class with the adapter parametrizations baked in; ``model`` is untouched.

    (``parametrize.remove_parametrizations`` is not used: a deep copy of a parametrized module shares its
    generated class, so removing the parametrization from the copy would break the original too.)
    """
    cls = type(model).__bases__[0] if parametrize.is_parametrized(model) else type(model)
    plain = cls(copy.deepcopy(model.config))
    plain.load_state_dict(baked_state(model), strict=True)
    plain.to(next(model.parameters()).device).train(model.training)
    for attr in ("source_info",):
        if hasattr(model, attr):
            setattr(plain, attr, copy.deepcopy(getattr(model, attr)))
    return plain


def plain_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The state dict under the base model's keys: parametrized tensors appear as their frozen originals."""
    out = {}
    for key, value in model.state_dict().items():
        if ".parametrizations." not in key:
            out[key] = value
        elif key.endswith(".original"):
            out[key.replace(".parametrizations.", ".")[: -len(".original")]] = value
    return out


def weights_digest(model: nn.Module) -> str:
    """sha256 over the (plain) state dict: identifies the exact base weights a delta was trained on."""
    h = hashlib.sha256()
    for key, value in sorted(plain_state(model).items()):
        h.update(key.encode())
        h.update(str(value.dtype).encode())
        h.update(value.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())  # any dtype
    return h.hexdigest()


# ----------------------------------------------------------------------------- the method base class
class ModulationMethod(AdaptationMethod):
    """A method that attaches adapter parametrizations to a frozen base generator (AdaFM, BSA).

    Subclasses implement ``attach(G)`` (identity-initialised parametrizations, usable on a bare generator,
    e.g. when loading a delta) and call ``snapshot_base(ctx)`` at the start of ``prepare``. Export bakes a copy
    of the EMA generator; ``write_artifacts`` writes the delta to ``<run>/adapter``.
    """

    def attach(self, generator: nn.Module) -> None:
        raise NotImplementedError

    def extra_adapter_tensors(self) -> dict[str, torch.Tensor]:
        """Method-level tensors that belong in the delta but not in the generator (BSA's latents)."""
        return {}

    def load_extra_adapter_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        if tensors:
            raise CheckpointError(f"unexpected tensors {sorted(tensors)[:3]} in the delta of {self.name}")

    def snapshot_base(self, ctx: AdaptContext) -> None:
        G = ctx.unwrap(ctx.G)
        self.base_state = {k: v.detach().cpu().clone() for k, v in plain_state(G).items()}
        self.base_digest = weights_digest(G)
        info = getattr(G, "source_info", {}) or {}
        source = getattr(ctx.args, "source", None) or info.get("model_id")
        self.base_model = {"id": source, "revision": info.get("revision"), "commit": info.get("commit"),
                           "sha256": self.base_digest}
        if source is not None and Path(str(source)).expanduser().is_dir():
            # published with the model: a local base by its name and its path relative to the adapter folder
            # (what load_delta follows for a local adapter), never the machine's absolute path
            folder = Path(str(source)).expanduser().resolve()
            adapter_dir = (Path(ctx.output_dir) / ADAPTER_SUBFOLDER).resolve() if getattr(ctx, "output_dir", None) else None
            self.base_model.update(id=folder.name, local=True,
                                   path=Path(os.path.relpath(folder, adapter_dir)).as_posix() if adapter_dir else None)

    def export(self, ctx: AdaptContext, generator: nn.Module) -> nn.Module:
        # a new plain generator: the parametrized EMA generator is still needed by write_artifacts (the delta)
        return bake(generator)

    def write_artifacts(self, ctx: AdaptContext, output_dir) -> dict[str, str]:
        save_delta(self, ctx.G_ema, Path(output_dir) / ADAPTER_SUBFOLDER)
        return {"adapter": ADAPTER_SUBFOLDER}


# ----------------------------------------------------------------------------- save / load / merge
def delta_tensors(method: ModulationMethod, model: nn.Module) -> dict[str, torch.Tensor]:
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


def save_delta(method: ModulationMethod, model: nn.Module, folder) -> Path:
    """Write ``adapter_config.json`` + ``adapter_model.safetensors`` for ``model`` (parametrized by ``method``)."""
    from safetensors.torch import save_file

    from fsgen_hub import __version__
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


def load_delta(folder_or_id, base: nn.Module | str | None = None, *, subfolder: str = "", revision: str | None = None,
               cache_dir=None, force_download: bool = False, token=None, local_files_only: bool = False) -> nn.Module:
    """The base generator with the delta applied (parametrized; ``merge`` it for a plain generator).

    ``base``: a generator, an id, or None for the id recorded in ``adapter_config.json``. The base's weights
    must be the ones the delta was trained on (digest check).
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from fsgen_hub.hub import AutoGenerator, resolve_model_files
    from fsgen_hub.methods.base import get_method

    files = resolve_model_files(folder_or_id, [ADAPTER_CONFIG_NAME, ADAPTER_WEIGHTS_NAME], subfolder=subfolder,
                                revision=revision, cache_dir=cache_dir, force_download=force_download, token=token,
                                local_files_only=local_files_only)
    config = read_delta_config(files[ADAPTER_CONFIG_NAME])
    recorded = config["base_model"] if isinstance(config["base_model"], dict) else {}
    digest = recorded.get("sha256")
    if not isinstance(digest, str) or len(digest) != 64:
        raise CheckpointError(f"{files[ADAPTER_CONFIG_NAME]} records no sha256 of its base weights: the delta cannot be "
                              "checked against a base, re-export it with this fsgen_hub")
    if base is None or isinstance(base, (str, Path)):
        base_id = str(base) if base is not None else recorded_base_id(recorded, folder_or_id, files[ADAPTER_CONFIG_NAME])
        base = AutoGenerator.from_pretrained(base_id, revision=recorded.get("revision") if base is None else None,
                                             cache_dir=cache_dir, token=token, local_files_only=local_files_only)
    else:
        base = copy.deepcopy(base)  # the caller's generator stays as it was
    if getattr(base, "architecture", None) != config["architecture"]:
        raise CheckpointError(f"the delta is for a {config['architecture']!r} generator, the base is "
                              f"{getattr(base, 'architecture', type(base).__name__)!r}: pass the matching base")
    if weights_digest(base) != digest:
        raise CheckpointError(f"the base weights differ from those the delta was trained on ({recorded.get('id')}, "
                              f"revision {recorded.get('revision')}): pass the exact base model")
    method = get_method(config["method"], config.get("config"))
    if not isinstance(method, ModulationMethod):
        raise CheckpointError(f"method {config['method']!r} does not support deltas")
    try:
        tensors = load_file(files[ADAPTER_WEIGHTS_NAME])
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"cannot read {files[ADAPTER_WEIGHTS_NAME]}: {str(exc).splitlines()[0]}") from None
    overrides = {k[len("base."):]: v for k, v in tensors.items() if k.startswith("base.")}
    adapter = {k[len("adapter."):]: v for k, v in tensors.items() if k.startswith("adapter.")}
    own = base.state_dict()
    unknown = sorted(k for k in overrides if k not in own or own[k].shape != overrides[k].shape)
    if unknown:
        raise CheckpointError(f"{files[ADAPTER_WEIGHTS_NAME]} overrides tensors the base lacks: {unknown[:3]}")
    with torch.no_grad():
        for key, value in overrides.items():
            own[key].copy_(value)
    method.attach(base)
    in_model = set(adapter_tensors(base))
    set_adapter_tensors(base, {k: v for k, v in adapter.items() if k in in_model}, source=files[ADAPTER_WEIGHTS_NAME])
    method.load_extra_adapter_tensors({k: v for k, v in adapter.items() if k not in in_model})
    base.eval().requires_grad_(False)
    base.delta_method = method
    base.source_info = {"model_id": str(folder_or_id), "revision": revision, "commit": None,
                        "local_dir": str(Path(files[ADAPTER_CONFIG_NAME]).parent), "base_model": recorded}
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
