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

from fsgen_hub.utils.errors import CheckpointError

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


# ---------------------------------------------------------------------------- a training state to ship
# A checkpoint made small enough to ship beside the model folder it belongs to, so that a fresh clone can
# continue the training run (scripts/build_faces64_source.py). The EMA generator and the discriminator are
# not stored again: they are the model folder's own weights, named by their sha256. The raw generator is
# kept in float16, Adam's second moments in bfloat16 (squared gradients span more decades than float16
# holds), and Adam's first moments are dropped where beta1 == 0 (StyleGAN2's Adam): there the next step's
# first moment is the next gradient alone. Restoring gives a checkpoint that continues the run closely,
# not bit for bit (the run folder's own checkpoints do that).
TRAINING_STATE_FORMAT = "fsgen_hub-training-state"
SHIPPED_MODULES = {"generator_ema": "model.safetensors", "discriminator": "discriminator/model.safetensors"}


def _shipped_digests(model_dir: Path) -> dict[str, str]:
    from fsgen_hub.utils.io import file_sha256

    missing = [f for f in SHIPPED_MODULES.values() if not (model_dir / f).is_file()]
    if missing:
        raise CheckpointError(f"{model_dir} lacks {', '.join(missing)}: a training state ships beside a model folder "
                              "holding the EMA generator and the discriminator")
    return {name: file_sha256(model_dir / f) for name, f in SHIPPED_MODULES.items()}


def _compact_optimizer(tree: dict) -> dict:
    groups = tree.get("param_groups", [])
    beta1_zero = {i for g in groups if g.get("betas", (1.0,))[0] == 0.0 for i in g.get("params", [])}
    state = {}
    for index, entry in tree.get("state", {}).items():
        entry = dict(entry)
        if index in beta1_zero:
            entry.pop("exp_avg", None)
        if "exp_avg_sq" in entry:
            entry["exp_avg_sq"] = entry["exp_avg_sq"].to(torch.bfloat16)
        if "exp_avg" in entry:
            entry["exp_avg"] = entry["exp_avg"].to(torch.bfloat16)
        state[index] = entry
    return {**tree, "state": state}


def _expand_optimizer(tree: dict) -> dict:
    state = {}
    for index, entry in tree.get("state", {}).items():
        entry = {k: (v.float() if isinstance(v, torch.Tensor) and v.is_floating_point() and k != "step" else v)
                 for k, v in entry.items()}
        if "exp_avg_sq" in entry and "exp_avg" not in entry:
            entry["exp_avg"] = torch.zeros_like(entry["exp_avg_sq"])
        state[index] = entry
    return {**tree, "state": state}


def export_training_state(checkpoint: Path, model_dir: Path, dest: Path) -> int:
    """Write ``dest``: the complete checkpoint folder ``checkpoint`` made small, tied to the shipped weights of
    ``model_dir`` (the EMA generator and discriminator exported from that same checkpoint). Returns its size in bytes."""
    from safetensors.torch import save_file

    from fsgen_hub.utils.io import atomic_dir, write_json

    checkpoint, model_dir, dest = Path(checkpoint), Path(model_dir), Path(dest)
    if not is_complete_checkpoint(checkpoint):
        raise CheckpointError(f"{checkpoint} is not a complete checkpoint folder: nothing to export")
    trainer_state = read_json(checkpoint / TRAINER_STATE_NAME)
    digests = _shipped_digests(model_dir)
    for name, shipped in SHIPPED_MODULES.items():  # the shipped weights must be this checkpoint's, rounded
        ours, theirs = _read_tensors(checkpoint / f"{name}.safetensors"), _read_tensors(model_dir / shipped)
        if set(ours) != set(theirs) or any(not torch.equal(v.to(theirs[k].dtype), theirs[k]) for k, v in ours.items()):
            raise CheckpointError(f"{model_dir / shipped} is not the {name} of {checkpoint}: export the model from "
                                  "this checkpoint first")
    with atomic_dir(dest) as tmp:
        files = []
        generator = _read_tensors(checkpoint / "generator.safetensors")
        save_file({k: v.half() if v.is_floating_point() else v for k, v in generator.items()}, str(tmp / "generator.safetensors"))
        files.append("generator.safetensors")
        for name in ("optimizer_G", "optimizer_D"):
            if (checkpoint / f"{name}.json").is_file():
                files += save_tree(_compact_optimizer(load_tree(checkpoint, name)), tmp, name)
        for name in ("method_state", "loop_state"):
            files += save_tree(load_tree(checkpoint, name), tmp, name)
        write_json(tmp / TRAINER_STATE_NAME, {
            **trainer_state, "format": TRAINING_STATE_FORMAT, "files": sorted(files),
            "shipped_weights": digests, "restores_to": sorted(trainer_state["files"]),
        })
    return sum(p.stat().st_size for p in dest.iterdir())


def restore_training_state(state_dir: Path, model_dir: Path, output_dir: Path) -> Path:
    """Rebuild ``output_dir/checkpoint-<step>`` (float32, the trainer's format) from a shipped training state and
    the model folder it belongs to; ``fsgen train --resume latest`` then continues the run."""
    from safetensors.torch import save_file

    from fsgen_hub.utils.io import atomic_dir, write_json

    state_dir, model_dir = Path(state_dir), Path(model_dir)
    trainer_state = read_json(state_dir / TRAINER_STATE_NAME)
    if not isinstance(trainer_state, dict) or trainer_state.get("format") != TRAINING_STATE_FORMAT:
        raise CheckpointError(f"{state_dir} is not a shipped fsgen_hub training state")
    if not all(isinstance(f, str) and "/" not in f and (state_dir / f).is_file() for f in trainer_state.get("files", [])):
        raise CheckpointError(f"{state_dir} lacks files its {TRAINER_STATE_NAME} lists: the training state is incomplete")
    if _shipped_digests(model_dir) != trainer_state.get("shipped_weights"):
        raise CheckpointError(f"{state_dir} belongs to other weights than {model_dir}: ship the state exported "
                              "with those weights, or continue from a run folder")
    step = int(trainer_state["step"])
    final = Path(output_dir) / f"{CHECKPOINT_PREFIX}{step}"
    with atomic_dir(final) as tmp:
        for name, shipped in [("generator", state_dir / "generator.safetensors"),
                              *[(n, model_dir / f) for n, f in SHIPPED_MODULES.items()]]:
            tensors = _read_tensors(shipped)  # a corrupt file is a one-line CheckpointError
            save_file({k: v.float() if v.is_floating_point() else v for k, v in tensors.items()}, str(tmp / f"{name}.safetensors"))
        for name in ("optimizer_G", "optimizer_D"):
            if (state_dir / f"{name}.json").is_file():
                save_tree(_expand_optimizer(load_tree(state_dir, name)), tmp, name)
        for name in ("method_state", "loop_state"):
            save_tree(load_tree(state_dir, name), tmp, name)
        restored = {k: v for k, v in trainer_state.items() if k not in ("shipped_weights", "restores_to")}
        write_json(tmp / TRAINER_STATE_NAME, {**restored, "format": CHECKPOINT_FORMAT, "files": trainer_state["restores_to"],
                                              "restored_from": "shipped training state"})
    if not is_complete_checkpoint(final):
        raise CheckpointError(f"restoring {state_dir} gave an incomplete checkpoint: the training state is corrupt")
    return final
