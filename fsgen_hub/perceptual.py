"""Image distances shared by methods and metrics: Laplacian pyramids and LPIPS backbone loading.

Two pyramids live here because two protocols fix them: SWD follows ProGAN (binomial blur down to 16 px,
``binomial_laplacian_pyramid``); BSA's and D3T's weight-free perceptual term pools 2x2 for a fixed number of
levels (``laplacian_pyramid``). Unifying them would change published numbers of one or the other.
LPIPS (``lpips_model``) loads torchvision's backbone from a local file only (``backbone_path``).
"""
from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn.functional as F

from fsgen_hub.utils.errors import MissingWeightsError
from fsgen_hub.utils.extras import require


# ----------------------------------------------------------------------------- pyramids
def laplacian_pyramid(x: torch.Tensor, levels: int) -> list[torch.Tensor]:
    """A ``levels``-deep pyramid by 2x2 average pooling and bilinear upsampling (BSA's, D3T's perceptual term):
    band-pass levels (x − up(down(x))) from fine to coarse, then the low-pass residual."""
    out = []
    for _ in range(levels - 1):
        if min(x.shape[-2:]) < 2:
            break
        down = F.avg_pool2d(x, 2)
        out.append(x - F.interpolate(down, size=x.shape[-2:], mode="bilinear", align_corners=False))
        x = down
    out.append(x)
    return out


def laplacian_l1(a: torch.Tensor, b: torch.Tensor, levels: int = 4) -> torch.Tensor:
    """Mean over pyramid levels of the per-pixel L1 distance: a weight-free perceptual distance."""
    pa, pb = laplacian_pyramid(a, levels), laplacian_pyramid(b, levels)
    return torch.stack([(x - y).abs().mean() for x, y in zip(pa, pb)]).mean()


KERNEL = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0]) / 16.0


def _blur(x):
    k = (KERNEL[:, None] * KERNEL[None, :]).to(x)[None, None].expand(x.shape[1], 1, 5, 5)
    return F.conv2d(F.pad(x, [2, 2, 2, 2], mode="reflect"), k, groups=x.shape[1])


def binomial_laplacian_pyramid(images: torch.Tensor, min_size: int = 16) -> list[torch.Tensor]:
    """ProGAN's pyramid (SWD): 5-tap binomial blur, stride-2 decimation, down to ``min_size`` px."""
    levels, current = [], images
    while current.shape[-1] > min_size:
        down = _blur(current)[:, :, ::2, ::2]
        up = F.interpolate(down, scale_factor=2, mode="nearest")
        levels.append(current - _blur(up))
        current = down
    levels.append(current)
    return levels


# ----------------------------------------------------------------------------- LPIPS
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
