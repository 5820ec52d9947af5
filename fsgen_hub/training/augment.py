"""Differentiable augmentation for tiny datasets (DiffAugment, Zhao et al., NeurIPS 2020).

Applied to real and fake images alike before the discriminator, so D cannot memorise 10 images
while gradients still reach G. Policies: ``color`` (brightness, saturation, contrast),
``translation`` (shift by up to 1/8 of the size, zero padded), ``cutout`` (a square of half size
set to zero).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def brightness(x):
    return x + (torch.rand(x.size(0), 1, 1, 1, device=x.device, dtype=x.dtype) - 0.5)


def saturation(x):
    mean = x.mean(dim=1, keepdim=True)
    return (x - mean) * (torch.rand(x.size(0), 1, 1, 1, device=x.device, dtype=x.dtype) * 2) + mean


def contrast(x):
    mean = x.mean(dim=[1, 2, 3], keepdim=True)
    return (x - mean) * (torch.rand(x.size(0), 1, 1, 1, device=x.device, dtype=x.dtype) + 0.5) + mean


def translation(x, ratio: float = 0.125):
    n, _, h, w = x.shape
    sy, sx = int(h * ratio + 0.5), int(w * ratio + 0.5)
    ty = torch.randint(-sy, sy + 1, (n, 1, 1), device=x.device)
    tx = torch.randint(-sx, sx + 1, (n, 1, 1), device=x.device)
    gy, gx = torch.meshgrid(torch.arange(h, device=x.device), torch.arange(w, device=x.device), indexing="ij")
    gy = torch.clamp(gy.unsqueeze(0) + ty + 1, 0, h + 1)
    gx = torch.clamp(gx.unsqueeze(0) + tx + 1, 0, w + 1)
    padded = F.pad(x, [1, 1, 1, 1])
    index = (gy * (w + 2) + gx).view(n, 1, h * w).expand(-1, x.size(1), -1)
    return padded.flatten(2).gather(2, index).view_as(x)


def cutout(x, ratio: float = 0.5):
    n, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    cy = torch.randint(0, h + (1 - ch % 2), (n, 1, 1), device=x.device)
    cx = torch.randint(0, w + (1 - cw % 2), (n, 1, 1), device=x.device)
    gy, gx = torch.meshgrid(torch.arange(h, device=x.device), torch.arange(w, device=x.device), indexing="ij")
    y0, x0 = cy - ch // 2, cx - cw // 2
    gy, gx = gy.unsqueeze(0), gx.unsqueeze(0)
    inside = (gy >= y0) & (gy < y0 + ch) & (gx >= x0) & (gx < x0 + cw)
    return x * (~inside).unsqueeze(1).to(x.dtype)


def random_xflip(x: torch.Tensor) -> torch.Tensor:
    """Each image mirrored left-right with probability 1/2 (NVlabs ``--mirror``: the data set plus its mirror)."""
    flip = torch.rand(x.size(0), 1, 1, 1, device=x.device) < 0.5
    return torch.where(flip, x.flip(3), x)


POLICIES = {"color": [brightness, saturation, contrast], "translation": [translation], "cutout": [cutout]}


class DiffAugment:
    def __init__(self, policy: str = "color,translation,cutout"):
        names = [p.strip() for p in policy.split(",") if p.strip() and p.strip() != "none"]
        unknown = [p for p in names if p not in POLICIES]
        if unknown:
            from fsgen_hub.utils.errors import FsgenError

            raise FsgenError(f"unknown augmentation {', '.join(unknown)}; choose from {', '.join(POLICIES)} or none")
        self.names = names

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        for name in self.names:
            for fn in POLICIES[name]:
                x = fn(x)
        return x

    def __repr__(self) -> str:
        return f"DiffAugment({','.join(self.names) or 'none'})"
