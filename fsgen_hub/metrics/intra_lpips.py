"""intra-LPIPS (CDC protocol, Ojha et al., CVPR 2021) through the ``lpips`` package.

1,000 samples are assigned to their nearest training shot by LPIPS; within each cluster the mean
pairwise LPIPS over up to 50 sampled members is taken; the result is the mean over non-empty
clusters (higher = more diverse, less collapse onto the shots). VGG backbone by default, as the
papers; its ImageNet weights come from torchvision's cache and are not downloaded here.
"""
from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

import torch

from fsgen_hub.metrics.base import MetricResult, register_metric
from fsgen_hub.utils.errors import MissingWeightsError

BACKBONE_FILES = {"vgg": "vgg16-397923af.pth", "alex": "alexnet-owt-7be5be79.pth"}


def backbone_path(net: str = "vgg", path: str | None = None) -> Path:
    filename = BACKBONE_FILES[net]
    for candidate in (path, os.environ.get("FSGEN_LPIPS_BACKBONE"), str(Path(torch.hub.get_dir()) / "checkpoints" / filename)):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    raise MissingWeightsError(
        f"LPIPS ({net}) needs torchvision's ImageNet backbone {filename}; none found: set "
        f"FSGEN_LPIPS_BACKBONE=/path/{filename}, pass --lpips-weights, or put it in {torch.hub.get_dir()}/checkpoints"
    )


def lpips_model(net: str = "vgg", weights: str | None = None, random_backbone: bool = False):
    """LPIPS with the backbone loaded from a local file (``random_backbone`` is for tests only)."""
    from fsgen_hub.utils.extras import require

    lpips = require("lpips", "LPIPS (intra_lpips, BSA's perceptual loss)")
    torchvision = require("torchvision", "LPIPS (intra_lpips, BSA's perceptual loss)")
    model = lpips.LPIPS(net=net, pnet_rand=True, verbose=False)
    if not random_backbone:
        state = torch.load(backbone_path(net, weights), map_location="cpu", weights_only=True)
        tv = torchvision.models.vgg16() if net == "vgg" else torchvision.models.alexnet()
        tv.load_state_dict(state)
        for slice_module in model.net.children():
            for index, layer in slice_module.named_children():
                layer.load_state_dict(tv.features[int(index)].state_dict())
    return model.eval().requires_grad_(False)


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
