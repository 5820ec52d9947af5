"""Memorisation check: share of samples whose nearest training shot is closer than a threshold.

Distance: root-mean-square pixel difference in [0, 1] at 32 px (small shifts still count as copies
at this size). 10-shot generators tend to copy their shots; a share near 1 means the model mostly
reproduces them.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from fsgen_hub.metrics.registry import MetricResult, register_metric
from fsgen_hub.utils.errors import FsgenError


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


def shot_spacing(shots: torch.Tensor, size: int = 32) -> torch.Tensor:
    """Each shot's RMS distance to its nearest other shot: how far apart two distinct images of the domain are."""
    if len(shots) < 2:
        raise FsgenError("the calibrated memorization and collapse metrics need at least 2 training shots")
    small = F.interpolate(shots.float(), size=(size, size), mode="area").flatten(1)
    distances = torch.cdist(small, small) / (3 * size * size) ** 0.5
    return distances.fill_diagonal_(float("inf")).min(1).values


def memorization_calibrated(fake: torch.Tensor, reference=None, shots=None, factor: float = 0.5, **_) -> list[MetricResult]:
    """Copies judged against the shots' own spacing, not a fixed RMS threshold.

    A sample's ratio is its RMS distance to the nearest shot divided by that shot's distance to its
    own nearest other shot; a sample counts as a copy when the ratio is below ``factor`` (0.5: the
    sample is at least twice as close to the shot as any other shot is). The fixed 0.05 RMS of
    ``memorization`` says 0 for a model that reproduces blurred or striped versions of the shots,
    since GAN samples never come that close in pixels; this ratio scales with how alike the domain's
    images are. Returns the copy share (``memorization_calibrated``) and the median ratio
    (``memorization_ratio``: 1 means as close to a shot as the shots are to each other).
    """
    if shots is None:
        raise FsgenError("the memorization metric needs the training shots (--shots DIR)")
    size = 32
    small = lambda x: F.interpolate(x.float(), size=(size, size), mode="area").flatten(1)  # noqa: E731
    to_shots = torch.cdist(small(fake), small(shots)) / (3 * size * size) ** 0.5
    nearest, index = to_shots.min(1)
    ratios = nearest / shot_spacing(shots, size)[index]
    protocol = {"feature_extractor": None, "size": size, "factor": factor,
                "distance": "RMS pixels / the nearest shot's distance to its nearest other shot"}
    quantiles = [float(q) for q in torch.quantile(ratios, torch.tensor([0.05, 0.25, 0.5, 0.75, 0.95]))]
    share = MetricResult("memorization_calibrated", float((ratios < factor).float().mean()), protocol=dict(protocol),
                         details={"ratio_quantiles": quantiles})
    median = MetricResult("memorization_ratio", float(ratios.median()), protocol=dict(protocol),
                          details={"ratio_quantiles": quantiles})
    return [share, median]


register_metric("memorization_calibrated", memorization_calibrated, 1000,
                "share of samples closer to a shot than half the shots' own spacing (lower is better), "
                "and the median ratio (memorization_ratio)")
