"""Memorisation check: share of samples whose nearest training shot is closer than a threshold.

Distance: root-mean-square pixel difference in [0, 1] at 32 px (small shifts still count as copies
at this size). 10-shot generators tend to copy their shots; a share near 1 means the model mostly
reproduces them.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from fsgen_hub.errors import FsgenError
from fsgen_hub.metrics.base import MetricResult, register_metric


def nearest_shot_distance(fake: torch.Tensor, shots: torch.Tensor, size: int = 32) -> torch.Tensor:
    small = lambda x: F.interpolate(x.float(), size=(size, size), mode="area").flatten(1)  # noqa: E731
    return torch.cdist(small(fake), small(shots)).min(1).values / (3 * size * size) ** 0.5


def memorization(fake: torch.Tensor, reference=None, shots=None, threshold: float = 0.05) -> MetricResult:
    if shots is None:
        raise FsgenError("the memorization metric needs the training shots (--shots DIR)")
    distances = nearest_shot_distance(fake, shots)
    quantiles = torch.quantile(distances, torch.tensor([0.05, 0.25, 0.5, 0.75, 0.95]))
    return MetricResult("memorization", float((distances < threshold).float().mean()),
                        protocol={"feature_extractor": None, "threshold_rms": threshold, "size": 32},
                        details={"nearest_shot_rms_quantiles": [float(q) for q in quantiles]})


register_metric("memorization", memorization, 1000, "share of samples within RMS 0.05 of a training shot (lower is better)")
