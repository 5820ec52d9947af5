"""Image grids for samples, source-vs-adapted comparisons and shot strips."""
from __future__ import annotations

import math

import torch


def image_grid(images: torch.Tensor, nrow: int | None = None, padding: int = 2) -> torch.Tensor:
    """(N, C, H, W) in [0, 1] → one (C, H', W') grid with white padding."""
    n, c, h, w = images.shape
    nrow = nrow or min(n, 8)
    rows = math.ceil(n / nrow)
    grid = torch.ones(c, rows * (h + padding) + padding, nrow * (w + padding) + padding)
    for i in range(n):
        r, col = divmod(i, nrow)
        y, x = padding + r * (h + padding), padding + col * (w + padding)
        grid[:, y : y + h, x : x + w] = images[i]
    return grid


def save_image_grid(images: torch.Tensor, path, nrow: int | None = None, fmt: str | None = None) -> None:
    from PIL import Image

    grid = image_grid(images.detach().float().clamp(0, 1).cpu(), nrow)
    array = (grid * 255).round().byte().permute(1, 2, 0).numpy()
    Image.fromarray(array).save(path, format=fmt)
