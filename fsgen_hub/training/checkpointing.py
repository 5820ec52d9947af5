"""Training checkpoints as safetensors + JSON only: a run folder is as safe to open as a model folder.

Accelerate's ``save_state``/``load_state`` pickle registered objects (``custom_checkpoint_N.pkl``) and
unpickle them on resume with ``weights_only=False``, so a crafted file in a shared run folder would run
code. Here every piece of state (models, optimizers, method state, loop state) is a tree of dicts, lists,
numbers, strings and tensors: the tensors go into a ``.safetensors`` file, the rest into a ``.json`` file
that refers to them by key. Loading parses JSON and reads tensors; nothing is ever unpickled.

A checkpoint folder ``checkpoint-<step>`` is complete when its ``trainer_state.json`` exists and every
file it lists is present (the trainer writes it last, into a temporary folder renamed at the end).
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import torch

from fsgen_hub.errors import CheckpointError

CHECKPOINT_PREFIX = "checkpoint-"
CHECKPOINT_RE = re.compile(rf"{CHECKPOINT_PREFIX}(\d+)")
TRAINER_STATE_NAME = "trainer_state.json"
CHECKPOINT_FORMAT = "fsgen_hub-checkpoint"
CHECKPOINT_FORMAT_VERSION = 1

_TENSOR, _TUPLE, _ITEMS = "__tensor__", "__tuple__", "__items__"
_MARKERS = {_TENSOR, _TUPLE, _ITEMS}


# ---------------------------------------------------------------------------- trees of state
def _encode(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(obj, torch.Tensor):
        key = f"t{len(tensors)}"
        tensors[key] = obj.detach().cpu().clone().contiguous()  # clone: safetensors refuses shared storage
        return {_TENSOR: key}
    if isinstance(obj, dict):
        if all(isinstance(k, str) for k in obj) and not _MARKERS & set(obj):
            return {k: _encode(v, tensors) for k, v in obj.items()}
        return {_ITEMS: [[_encode(k, tensors), _encode(v, tensors)] for k, v in obj.items()]}  # int keys (optimizers)
    if isinstance(obj, tuple):
        return {_TUPLE: [_encode(v, tensors) for v in obj]}
    if isinstance(obj, list):
        return [_encode(v, tensors) for v in obj]
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"cannot checkpoint a {type(obj).__name__}: state must be tensors, numbers, strings, lists, dicts")


def _decode(obj: Any, tensors: dict[str, torch.Tensor], where: str) -> Any:
    if isinstance(obj, list):
        return [_decode(v, tensors, where) for v in obj]
    if not isinstance(obj, dict):
        return obj
    if _TENSOR in obj:
        try:
            return tensors[obj[_TENSOR]]
        except (KeyError, TypeError):
            raise CheckpointError(f"{where} refers to a tensor its .safetensors file lacks: the checkpoint is corrupt") from None
    if _TUPLE in obj:
        return tuple(_decode(v, tensors, where) for v in obj[_TUPLE])
    if _ITEMS in obj:
        pairs = obj[_ITEMS]
        if not isinstance(pairs, list) or not all(isinstance(p, list) and len(p) == 2 for p in pairs):
            raise CheckpointError(f"{where} is malformed: the checkpoint is corrupt")
        return {_decode(k, tensors, where): _decode(v, tensors, where) for k, v in pairs}
    return {k: _decode(v, tensors, where) for k, v in obj.items()}


def save_tree(tree: Any, folder: Path, name: str) -> list[str]:
    """Write ``name.json`` (+ ``name.safetensors`` when the tree holds tensors); returns the file names."""
    from safetensors.torch import save_file

    tensors: dict[str, torch.Tensor] = {}
    encoded = _encode(tree, tensors)
    names = [f"{name}.json"]
    (folder / f"{name}.json").write_text(json.dumps({"tree": encoded}), encoding="utf-8")
    if tensors:
        save_file(tensors, str(folder / f"{name}.safetensors"))
        names.append(f"{name}.safetensors")
    return names


def _read_tensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError, MemoryError) as exc:
        raise CheckpointError(f"cannot read {path}: {str(exc).splitlines()[0][:160]} (corrupt checkpoint?)") from None


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as exc:
        raise CheckpointError(f"cannot read {path}: {str(exc).splitlines()[0][:160]} (corrupt checkpoint?)") from None


def load_tree(folder: Path, name: str) -> Any:
    data = read_json(folder / f"{name}.json")
    if not isinstance(data, dict) or "tree" not in data:
        raise CheckpointError(f"{folder / name}.json is not an fsgen_hub checkpoint file")
    weights = folder / f"{name}.safetensors"
    tensors = _read_tensors(weights) if weights.is_file() else {}
    return _decode(data["tree"], tensors, f"{folder / name}.json")


def save_module(module: torch.nn.Module, folder: Path, name: str) -> str:
    from safetensors.torch import save_file

    state = {k: v.detach().cpu().clone().contiguous() for k, v in module.state_dict().items()}
    save_file(state, str(folder / f"{name}.safetensors"))
    return f"{name}.safetensors"


def load_module(module: torch.nn.Module, folder: Path, name: str) -> None:
    path = folder / f"{name}.safetensors"
    state = _read_tensors(path)
    own = module.state_dict()
    if set(state) != set(own) or any(own[k].shape != v.shape for k, v in state.items()):
        raise CheckpointError(f"{path} does not fit this run's {name} (other architecture or method?)")
    module.load_state_dict(state)


# ---------------------------------------------------------------------------- checkpoint folders
def checkpoint_step(path: Path) -> int | None:
    match = CHECKPOINT_RE.fullmatch(path.name)
    return int(match.group(1)) if match else None


def is_complete_checkpoint(path: Path) -> bool:
    state_file = path / TRAINER_STATE_NAME
    if not path.is_dir() or path.is_symlink() or not state_file.is_file():
        return False
    try:
        state = json.loads(state_file.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return False
    files = state.get("files") if isinstance(state, dict) else None
    return isinstance(files, list) and all(isinstance(f, str) and "/" not in f and (path / f).is_file() for f in files)


def list_checkpoints(output_dir: Path) -> list[Path]:
    """Complete ``checkpoint-<int>`` folders of a run, oldest first (``checkpoint-backup`` and partial ones ignored)."""
    if not output_dir.is_dir():
        return []
    found = [(checkpoint_step(p), p) for p in output_dir.iterdir()]
    return [p for step, p in sorted((s, p) for s, p in found if s is not None) if is_complete_checkpoint(p)]
