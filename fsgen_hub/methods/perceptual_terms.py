"""Perceptual distance terms of the reconstruction-style methods (BSA, D3T): ``build_perceptual(kind, ctx)``."""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from fsgen_hub.methods.base import AdaptContext
from fsgen_hub.perceptual import backbone_path, laplacian_l1, lpips_model
from fsgen_hub.utils.errors import FsgenError

PERCEPTUAL_CHOICES = ("none", "laplacian", "d_features", "lpips_vgg")


def source_has_discriminator(ctx: AdaptContext) -> bool:
    """Whether ctx.D came from the source model (False: the trainer initialised it at random)."""
    return ctx.D is not None and ctx.discriminator_origin == "source"


def feature_l1(D: nn.Module, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    fa, fb = D(a, return_features=True)[1], D(b, return_features=True)[1]
    return torch.stack([(fa[k] - fb[k]).abs().mean() for k in fa]).mean()


def build_perceptual(kind: str, ctx: AdaptContext, *, levels: int = 4, lpips_weights: str | None = None,
                     who: str = "BSA") -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None:
    """A distance(fake, target) → scalar for ``kind`` (None for "none"); fails early with a one-line error."""
    if kind == "none":
        return None
    if kind == "laplacian":
        return lambda a, b: laplacian_l1(a, b, levels)
    if kind == "d_features":
        if not source_has_discriminator(ctx):
            raise FsgenError(f"{who}: perceptual='d_features' needs the source model's discriminator, which "
                             f"{getattr(ctx.args, 'source', 'the source')} lacks: use perceptual=laplacian")
        D = ctx.frozen_copy("source_D", ctx.D)
        return lambda a, b: feature_l1(D, a, b)
    if kind == "lpips_vgg":
        backbone_path("vgg", lpips_weights)  # MissingWeightsError naming the file and how to provide it
        model = lpips_model("vgg", lpips_weights).to(ctx.device)
        return lambda a, b: model(a, b).mean()
    raise FsgenError(f"{who}: unknown perceptual term {kind!r}; choose from {', '.join(PERCEPTUAL_CHOICES)}")
