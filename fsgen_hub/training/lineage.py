"""lineage.json of a finished run (docs/CONTRACTS.md): how the model was made, with no local path in it.

lineage.json is published with the model: it names local files by their name (plus digests and a path
relative to the run folder), never by the absolute paths of the machine that trained it.
"""
from __future__ import annotations

import hashlib
import os
import platform
from pathlib import Path
from typing import Any

import torch

from fsgen_hub.utils.constants import WEIGHTS_NAME, __version__
from fsgen_hub.utils.io import file_sha256, is_local_path, portable_name


def build_lineage(*, kind: str, base: dict, run_dir: Path, data_id, shot_records: list[dict], args, steps_run: int,
                  accelerator, replicas_identical: bool | None, wall_time_s: float, discriminator: str,
                  artifacts: dict[str, str], method=None, best: dict | None = None) -> dict[str, Any]:
    """The lineage record of a run in ``run_dir``; ``method`` is None for a model trained from scratch."""
    lineage: dict[str, Any] = {
        "fsgen_hub_version": __version__,
        "kind": kind,
        "base_model": portable_base(base, run_dir),
        "data": {**_data_record(portable_name(data_id), shot_records, args),
                 **({"local": True} if is_local_path(data_id) else {})},
        "training": {
            "steps": args.steps, "steps_run": steps_run, "stopped_early": steps_run < args.steps,
            "batch_size": args.batch_size, "seed": args.seed,
            "mixed_precision": args.mixed_precision, "num_processes": accelerator.num_processes,
            "replicas_identical": replicas_identical, "wall_time_s": round(wall_time_s, 1),
            "hardware": hardware_description(accelerator), "discriminator": discriminator,
            "augment": args.augment, "args": portable_args(args.to_dict()),
        },
        "artifacts": artifacts,
    }
    if method is not None:
        lineage["method"] = {"name": method.name, "config": method.config.to_dict(), "paper": method.paper,
                             "description": method.description}
    if best is not None:
        lineage["best_checkpoint"] = {"metric": best["metric"], "value": best["value"], "step": best["step"],
                                      "used_evaluation_set": True}
    return lineage


def hardware_description(accelerator) -> str:
    device = accelerator.device
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        name = f"cpu ({os.cpu_count()} cores, {platform.machine()})"
    return f"{accelerator.num_processes} x {name}" if accelerator.num_processes > 1 else name


MAX_LISTED_FILES = 100
PATH_ARGS = ("source", "data", "output_dir", "resume", "eval_reference")


def portable_args(values: dict) -> dict:
    return {k: portable_name(v) if k in PATH_ARGS else v for k, v in values.items()}


def portable_base(base: dict, run_dir: Path) -> dict:
    """The base model of the lineage: a hub or zoo id as it is; a local folder as its name, its path relative to
    the run folder (which the demo follows to show the source) and the sha256 of its weights file."""
    source = base.get("id")
    if not is_local_path(source):
        return base
    folder = Path(source).expanduser().resolve()
    weights = folder / WEIGHTS_NAME
    return {**base, "id": folder.name, "local": True,
            "path": Path(os.path.relpath(folder, run_dir.resolve())).as_posix(),
            "sha256": file_sha256(weights) if weights.is_file() else None}



def _data_record(data_id, records: list[dict], args) -> dict:
    """The training images of the lineage: every file's hash for few-shot sets; for a large training
    set (a source model's 23k photos), one digest of all hashes instead of megabytes of them."""
    drawn = args.shots is not None  # the shot seed matters only when a subset was drawn
    data = {"id": data_id, "shots": len(records), "shot_seed": args.shot_seed if drawn else None,
            "image_column": args.image_column}
    # a dataset's configuration, split and revision, recorded when they are not the defaults
    for key, value in (("config", args.data_config), ("split", args.data_split), ("revision", args.data_revision)):
        if value is not None and not (key == "split" and value == "train"):
            data[key] = value
    if len(records) <= MAX_LISTED_FILES:
        return {**data, "files": records}
    digest = hashlib.sha256("".join(r["sha256"] for r in records).encode()).hexdigest()
    return {**data, "files": [], "files_digest": digest}
