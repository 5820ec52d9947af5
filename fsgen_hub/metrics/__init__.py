"""Metrics: FID/KID (Inception), intra-LPIPS, and weight-free SWD, MS-SSIM diversity, memorisation, correspondence,
collapse, face rate. Importing the package imports every metric file, so each registers itself (``register_metric``)."""
from fsgen_hub.metrics import (  # noqa: F401 (registration)
    collapse,
    correspondence,
    diversity,
    face_rate,
    fid_kid,
    intra_lpips,
    memorization,
    swd,
)
from fsgen_hub.metrics.base import evaluate
from fsgen_hub.metrics.registry import MetricResult, default_metrics, list_metrics, register_metric, resolve_metric

__all__ = ["MetricResult", "default_metrics", "evaluate", "list_metrics", "register_metric", "resolve_metric"]
