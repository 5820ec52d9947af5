"""Metrics: FID/KID (Inception), intra-LPIPS, and weight-free SWD, MS-SSIM diversity, memorisation."""
from fsgen_hub.metrics.base import MetricResult, evaluate, list_metrics, register_metric, resolve_metric

__all__ = ["MetricResult", "evaluate", "list_metrics", "register_metric", "resolve_metric"]
