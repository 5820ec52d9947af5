"""Source ↔ adapted correspondence (CDC's claim, Ojha et al., CVPR 2021): does a latent keep its identity?

For ``paired_latents`` fixed latents (constant noise) the source and the adapted generator each
give one image. The pairwise distances among the source images and among the adapted images are
compared by Spearman's rank correlation of the two upper triangles: 1 when the adapted model keeps
which latents look alike (whatever the domain's style), about 0 when the latent → image relation is
scrambled (e.g. a collapse onto a few shots, where distances follow the shot each latent falls on).

Features: grayscale, area-downsampled to 16 px, each image standardised (zero mean, unit std). Cheap,
weight-free and deterministic; grayscale and standardisation keep a domain's colour, brightness and
contrast (photo → sketch) out of the distances, 16 px keeps the layout (pose, face shape, hair mass)
that CDC's correspondence is about and drops the texture the adaptation is meant to change.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from fsgen_hub.metrics.registry import MetricResult, register_metric
from fsgen_hub.utils.errors import FsgenError

FEATURE_SIZE = 16


def layout_features(images: torch.Tensor, size: int = FEATURE_SIZE) -> torch.Tensor:
    """(N, size*size) standardised grayscale thumbnails of images in [0, 1]."""
    gray = images.float().mean(1, keepdim=True)
    small = F.interpolate(gray, size=(size, size), mode="area").flatten(1)
    small = small - small.mean(1, keepdim=True)
    return small / (small.std(1, keepdim=True) + 1e-6)


def pairwise_upper(features: torch.Tensor) -> torch.Tensor:
    i, j = torch.triu_indices(len(features), len(features), offset=1)
    return torch.cdist(features.double(), features.double())[i, j]


def distance_rank_correlation(source_images: torch.Tensor, adapted_images: torch.Tensor) -> float:
    """Spearman correlation of the pairwise feature distances of two image sets, paired by index."""
    from scipy.stats import spearmanr

    if len(source_images) != len(adapted_images) or len(source_images) < 3:
        raise FsgenError("correspondence needs the same number (at least 3) of source and adapted samples")
    a = pairwise_upper(layout_features(source_images)).numpy()
    b = pairwise_upper(layout_features(adapted_images)).numpy()
    if a.std() == 0 or b.std() == 0:  # every image alike: no ranking to keep
        return 0.0
    return float(spearmanr(a, b).statistic)


def correspondence(fake=None, reference=None, shots=None, source_samples=None, adapted_samples=None, **_) -> MetricResult:
    if source_samples is None or adapted_samples is None:
        raise FsgenError("correspondence needs source and adapted samples of the same latents (evaluate(..., source=...))")
    value = distance_rank_correlation(source_samples, adapted_samples)
    return MetricResult("correspondence", value,
                        protocol={"feature_extractor": None, "features": f"grayscale {FEATURE_SIZE}px standardised",
                                  "statistic": "spearman of pairwise L2 distances"})


register_metric("correspondence", correspondence, 100,
                "Spearman correlation of pairwise distances, source vs adapted on the same latents (higher keeps identity)",
                needs_source=True)
