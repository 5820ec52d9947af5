"""The metric registry (a leaf, NVlabs metric_main style): names encode the protocol, results record it.

Each metric file calls ``register_metric`` at import; ``fsgen_hub/metrics/__init__.py`` imports every metric
file, so the registry never imports its plugins. ``evaluate`` lives in ``fsgen_hub.metrics.base``.
"""
from __future__ import annotations

import datetime
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from fsgen_hub.utils.errors import FsgenError, MissingWeightsError


@dataclass
class MetricResult:
    metric: str
    value: float
    protocol: dict[str, Any] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    model: str | None = None
    step: int | None = None

    def to_record(self) -> dict[str, Any]:
        record = asdict(self)
        record["timestamp"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        return record


@dataclass
class MetricSpec:
    name: str
    fn: Callable[..., MetricResult]   # fn(fake, reference, shots, generator=..., options) -> MetricResult
    num_samples: int                  # default generated images for this protocol
    description: str
    needs_weights: bool = False
    check: Callable[..., Any] | None = None  # check(**options): raises MissingWeightsError before any sampling
    needs_source: bool = False        # fn also gets source_samples= and adapted_samples= (same latents)


_METRICS: dict[str, MetricSpec] = {}


def register_metric(name: str, fn, num_samples: int, description: str, needs_weights: bool = False, check=None,
                    needs_source: bool = False) -> None:
    """Make ``fn`` available as metric ``name`` (the name encodes the protocol); a name is taken once."""
    if name in _METRICS and _METRICS[name].fn is not fn:
        raise FsgenError(f"a metric named {name!r} is already registered: register {getattr(fn, '__name__', fn)} "
                         "under another name")
    _METRICS[name] = MetricSpec(name, fn, num_samples, description, needs_weights, check, needs_source)


def list_metrics() -> dict[str, MetricSpec]:
    return dict(sorted(_METRICS.items()))


WEIGHT_FREE_METRICS = ("swd", "msssim_diversity", "memorization")


def default_metrics() -> list[str]:
    """What every finished adaptation run reports: the weight-free metrics, plus each metric whose weights
    are configured (``FSGEN_INCEPTION_WEIGHTS`` for fid5k/kid5k, ``FSGEN_LPIPS_BACKBONE`` for intra_lpips1k,
    or the files in torch's hub cache)."""
    names = list(WEIGHT_FREE_METRICS)
    for name, spec in list_metrics().items():
        if spec.needs_weights and spec.check is not None:
            try:
                spec.check()
            except MissingWeightsError:
                continue
            names.append(name)
    return names


ALIASES = {"fid": "fid5k", "kid": "kid5k", "intra_lpips": "intra_lpips1k", "diversity": "msssim_diversity",
           "lpips": "intra_lpips1k"}


def resolve_metric(name: str) -> MetricSpec:
    metrics = list_metrics()
    name = ALIASES.get(name, name)
    if name in metrics:
        return metrics[name]
    match = re.fullmatch(r"(fid|kid|intra_lpips|swd)(\d+)k", name)
    if match and f"{match.group(1)}5k" in metrics or match and f"{match.group(1)}1k" in metrics:
        base = next(m for m in metrics if m.startswith(match.group(1)))
        spec = metrics[base]
        return MetricSpec(name, spec.fn, int(match.group(2)) * 1000, spec.description, spec.needs_weights, spec.check,
                          spec.needs_source)
    raise FsgenError(f"unknown metric {name!r}; available: {', '.join(metrics)} (aliases: {', '.join(ALIASES)})")
