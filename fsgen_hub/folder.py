"""The typed reader of a model folder (docs/CONTRACTS.md): config, lineage, metric records, pruning record.

The card (``fsgen_hub.cards``), publishing (``fsgen_hub.publish``), ``fsgen adapt``'s summary, evaluation,
the trainer and the demo (``parse_model_files``: lenient, on files fetched one by one) read a folder through
here rather than each parsing its JSON files.
"""
from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fsgen_hub.utils.constants import CONFIG_NAME, LINEAGE_NAME, METRICS_NAME, PRUNING_NAME, WEIGHTS_NAME
from fsgen_hub.utils.errors import CheckpointError, FsgenError, ModelNotFoundError


@dataclass(frozen=True)
class ModelFolder:
    """What a generator folder holds: ``config`` (config.json), ``lineage`` (lineage.json or None),
    ``metrics`` (metrics.jsonl records, in file order) and ``pruning`` (pruning.json or None)."""

    path: Path
    config: dict[str, Any]
    lineage: dict[str, Any] | None = None
    metrics: list[dict[str, Any]] = field(default_factory=list)
    pruning: dict[str, Any] | None = None

    def __iter__(self):  # config, lineage, metrics = read_model_folder(dir): the reader's original shape
        return iter((self.config, self.lineage, self.metrics))

    @property
    def kind(self) -> str | None:
        return (self.lineage or {}).get("kind")

    @property
    def base_model(self) -> dict[str, Any]:
        return (self.lineage or {}).get("base_model") or {}

    @property
    def method(self) -> dict[str, Any]:
        return (self.lineage or {}).get("method") or {}

    def latest_metrics(self) -> dict[str, dict[str, Any]]:
        """The last record of each metric name."""
        return {record["metric"]: record for record in self.metrics}


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise FsgenError(f"{path} is not readable JSON ({str(exc).splitlines()[0]}): fix or regenerate it") from None


def read_model_folder(model_dir: str | os.PathLike) -> ModelFolder:
    """The generator folder ``model_dir``, read and checked; a one-line FsgenError if it is not one."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise ModelNotFoundError(f"no model folder at {model_dir}")
    if not (model_dir / CONFIG_NAME).is_file() or not (model_dir / WEIGHTS_NAME).is_file():
        raise FsgenError(
            f"{model_dir} is not an fsgen_hub model folder (it needs config.json and model.safetensors): "
            "pass a folder written by `fsgen adapt`, `fsgen convert` or save_pretrained"
        )
    config = _read_json(model_dir / CONFIG_NAME)
    if not isinstance(config, dict) or not config.get("architecture"):
        raise FsgenError(f"{model_dir / CONFIG_NAME} names no architecture: it was not written by fsgen_hub")
    if config.get("role", "generator") != "generator":
        raise FsgenError(f"{model_dir} holds a {config.get('role')}, not a generator: publish the generator folder")
    lineage = _read_json(model_dir / LINEAGE_NAME) if (model_dir / LINEAGE_NAME).is_file() else None
    if lineage is not None and not isinstance(lineage, dict):
        raise FsgenError(f"{model_dir / LINEAGE_NAME} must hold a JSON object")
    metrics_path = model_dir / METRICS_NAME
    records = parse_metric_records(metrics_path.read_text(encoding="utf-8"), metrics_path) if metrics_path.is_file() else []
    pruning = None
    if (model_dir / PRUNING_NAME).is_file():  # informative only: a broken record does not make the folder unusable
        try:
            pruning = _read_json(model_dir / PRUNING_NAME)
        except FsgenError:
            pruning = None
    return ModelFolder(model_dir, config, lineage, records, pruning if isinstance(pruning, dict) else None)


def parse_model_files(path: str | os.PathLike, texts: Mapping[str, str | None]) -> ModelFolder | None:
    """A model folder from the texts of its files fetched one by one (``{file name: text or None}``), read
    leniently: the demo shows whatever a downloaded folder holds, without its weights. A file that is absent, not
    JSON or not a JSON object counts as absent and a bad metric line is skipped; None without a config.json object."""
    def json_object(name: str) -> dict[str, Any] | None:
        try:
            value = json.loads(texts.get(name) or "null")
        except (ValueError, RecursionError):
            return None
        return value if isinstance(value, dict) else None

    config = json_object(CONFIG_NAME)
    if config is None:
        return None
    return ModelFolder(Path(path), config, json_object(LINEAGE_NAME), parse_metric_records(texts.get(METRICS_NAME)),
                       json_object(PRUNING_NAME))


def parse_metric_records(text: str | None, source: str | os.PathLike | None = None) -> list[dict[str, Any]]:
    """The records of a metrics.jsonl text: each a JSON object with a metric name and a numeric value.

    With ``source`` (the file's path) a bad line is a one-line FsgenError naming it; without, bad lines are
    skipped (the demo shows what a downloaded file has: one broken line does not hide the others).
    """
    records = []
    for number, line in enumerate((text or "").splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except (ValueError, RecursionError):
            if source is None:
                continue
            raise FsgenError(f"{source} line {number} is not JSON: fix or delete that line") from None
        value = record.get("value") if isinstance(record, dict) else None
        if not isinstance(record, dict) or not isinstance(record.get("metric"), str) or isinstance(value, bool) \
                or not isinstance(value, (int, float)):
            if source is None:
                continue
            raise FsgenError(f"{source} line {number} has no metric name and numeric value: fix or delete it")
        records.append(record)
    return records


def read_config(path: str | os.PathLike) -> dict[str, Any]:
    """A config.json as a dict; CheckpointError (re-save or re-convert) when it is not a JSON object."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (ValueError, RecursionError) as exc:
        raise CheckpointError(f"{path} is not valid JSON ({exc}); re-save or re-convert the model") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path} must hold a JSON object")
    return data


def read_lineage(model_dir: str | os.PathLike) -> dict | None:
    """``model_dir/lineage.json``, or None when the folder has none."""
    path = Path(model_dir) / LINEAGE_NAME
    return json.loads(path.read_text()) if path.is_file() else None


def weights_sha256(model_dir: str | os.PathLike | None) -> str | None:
    """sha256 of a model folder's weights file (what a lineage's ``base_model.sha256`` records), None without one."""
    from fsgen_hub.utils.io import file_sha256

    weights = Path(model_dir) / WEIGHTS_NAME if model_dir else None
    return file_sha256(weights) if weights is not None and weights.is_file() else None
