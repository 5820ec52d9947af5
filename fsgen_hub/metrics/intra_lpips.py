"""intra-LPIPS (CDC protocol, Ojha et al., CVPR 2021) through the ``lpips`` package.

1,000 samples are assigned to their nearest training shot by LPIPS; within each cluster the mean
pairwise LPIPS over up to 50 sampled members is taken; the result is the mean over non-empty
clusters (higher = more diverse, less collapse onto the shots). VGG backbone by default, as the
papers; its ImageNet weights come from torchvision's cache and are not downloaded here.
"""
from __future__ import annotations

import hashlib
from collections.abc import Callable

import torch

from fsgen_hub.metrics.registry import MetricResult, register_metric
from fsgen_hub.perceptual import backbone_path, lpips_model


def intra_cluster_distance(samples: torch.Tensor, shots: torch.Tensor, distance: Callable, max_members: int = 50,
                           seed: int = 0) -> tuple[float, list[int]]:
    """CDC's clustering logic with any pairwise ``distance(a, b) -> (N,)`` (tests use a stand-in)."""
    k = len(shots)
    to_shot = torch.stack([distance(samples, shots[j].expand_as(samples)) for j in range(k)], dim=1)  # (n, k)
    assignment = to_shot.argmin(1)
    gen = torch.Generator().manual_seed(seed)
    cluster_means, sizes = [], []
    for j in range(k):
        members = torch.nonzero(assignment == j).flatten()
        sizes.append(int(members.numel()))
        if members.numel() < 2:
            continue
        members = members[torch.randperm(members.numel(), generator=gen)[:max_members]]
        ii, jj = torch.triu_indices(len(members), len(members), offset=1)
        d = distance(samples[members[ii]], samples[members[jj]])
        cluster_means.append(d.mean())
    value = float(torch.stack(cluster_means).mean()) if cluster_means else float("nan")
    return value, sizes


def intra_lpips(fake, reference=None, shots=None, net: str = "vgg", lpips_weights=None, random_backbone: bool = False,
                batch_size: int = 64, **_) -> MetricResult:
    from fsgen_hub.utils.errors import FsgenError

    if shots is None:
        raise FsgenError("intra-LPIPS needs the training shots (--shots DIR)")
    model = lpips_model(net, lpips_weights, random_backbone)

    def distance(a, b):
        out = [model(a[i:i + batch_size] * 2 - 1, b[i:i + batch_size] * 2 - 1).flatten() for i in range(0, len(a), batch_size)]
        return torch.cat(out)

    value, sizes = intra_cluster_distance(fake.float(), shots.float(), distance)
    extractor = f"lpips {net}" + (" RANDOM BACKBONE (test only)" if random_backbone else "")
    sha = None if random_backbone else hashlib.sha256(backbone_path(net, lpips_weights).read_bytes()).hexdigest()
    return MetricResult("intra_lpips", value, protocol={"feature_extractor": extractor, "weights_sha256": sha, "max_members": 50},
                        details={"cluster_sizes": sizes})


def _check_weights(net: str = "vgg", lpips_weights=None, random_backbone: bool = False, **_) -> None:
    if not random_backbone:
        backbone_path(net, lpips_weights)


register_metric("intra_lpips1k", intra_lpips, 1000, "CDC intra-cluster LPIPS (higher is more diverse)", needs_weights=True,
                check=_check_weights)
