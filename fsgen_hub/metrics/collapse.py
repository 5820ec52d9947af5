"""Mode collapse: the adapted model's diversity relative to the source, and its number of distinct modes.

``collapse_diversity_ratio``: MS-SSIM diversity of the adapted samples divided by that of the source
samples, on the same latents and the same 250 random pairs (constant noise; 250 pairs put the ratio
within ~2 % at half the cost of 500). 1 keeps the source's variety;
near 0 means every latent gives nearly the same image. A ratio, not the raw diversity, because a
domain's images may be more alike than the source's (sketches vs photos) — the source's own
diversity on the same latents is the natural yardstick for "how much variety did we keep".

``collapse_modes``: the effective number of distinct images among the samples: complete-linkage
clusters whose members all lie within ``factor`` x the shots' median nearest-neighbour RMS distance
of each other (two samples closer than half of what separates two distinct training images count
as one mode), then exp(entropy) of the cluster sizes (a few large clusters count as few modes).
Chosen over exp(entropy) of the nearest-shot assignment, which is capped at the number of shots
and rewards a model that copies all ten shots evenly. Depends on the sample count (at most N):
compare runs with the same protocol.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from fsgen_hub.metrics.diversity import msssim_diversity
from fsgen_hub.metrics.memorization import shot_spacing
from fsgen_hub.metrics.registry import MetricResult, register_metric
from fsgen_hub.utils.errors import FsgenError


def effective_modes(images: torch.Tensor, threshold: float, size: int = 32) -> tuple[float, int]:
    """exp(entropy) of complete-linkage cluster sizes at RMS ``threshold``, and the number of clusters."""
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.spatial.distance import pdist

    if len(images) < 2:
        return float(len(images)), len(images)
    small = F.interpolate(images.float(), size=(size, size), mode="area").flatten(1).double().numpy()
    distances = pdist(small) / (3 * size * size) ** 0.5
    labels = fcluster(linkage(distances, method="complete"), t=threshold, criterion="distance")
    counts = torch.bincount(torch.as_tensor(labels)).double()
    p = counts[counts > 0] / len(labels)
    return math.exp(float(-(p * p.log()).sum())), int((counts > 0).sum())


def collapse(fake: torch.Tensor, reference=None, shots=None, source_samples=None, adapted_samples=None,
             factor: float = 0.5, pairs: int = 250, **_) -> list[MetricResult]:
    if shots is None:
        raise FsgenError("the collapse metric needs the training shots (--shots DIR) to calibrate its distance")
    if source_samples is None or adapted_samples is None:
        raise FsgenError("the collapse metric needs source and adapted samples of the same latents (evaluate(..., source=...))")
    source_div = msssim_diversity(source_samples, pairs=pairs, seed=0).value
    adapted_div = msssim_diversity(adapted_samples, pairs=pairs, seed=0).value
    ratio = adapted_div / source_div if source_div > 0 else float("nan")
    threshold = factor * float(shot_spacing(shots).median())
    modes, clusters = effective_modes(fake, threshold)
    protocol = {"feature_extractor": None, "factor": factor, "threshold_rms": threshold, "size": 32, "pairs": pairs}
    return [MetricResult("collapse_diversity_ratio", ratio, protocol=dict(protocol),
                         details={"source_diversity": source_div, "adapted_diversity": adapted_div}),
            MetricResult("collapse_modes", modes, protocol=dict(protocol), details={"clusters": clusters})]


register_metric("collapse", collapse, 1000,
                "MS-SSIM diversity adapted/source on the same latents (collapse_diversity_ratio) and the effective "
                "number of distinct samples (collapse_modes); higher is less collapsed", needs_source=True)
