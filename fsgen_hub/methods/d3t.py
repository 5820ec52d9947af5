"""D3T-GAN: data-dependent domain transfer (Wu, Wang, Wu & Li, "D3T-GAN: Data-Dependent Domain Transfer GANs for
Few-shot Image Generation", arXiv:2205.06032).

Only the abstract is available to us: "a data-dependent transformation, which projects and reconstructs the
target samples into the source generator space. Then, we perform knowledge transfer from transformed samples
to generated samples. [...] a multi-level discriminant knowledge distillation from the source discriminator to
the target discriminator on both the real and fake samples." The equations below are ours.

(a) Data-dependent transformation (``prepare``, once). Each target image x_i is inverted into the frozen
    source generator G_s:

        l_i* = argmin_l |G_s(l) − x_i|₁ + inversion_perceptual_weight · P(G_s(l), x_i)

    over z (DCGAN; init the best of ``inversion_candidates`` prior draws) or w / w+ (StyleGAN2, ``latent_space``;
    init the mean w), with
    Adam for ``inversion_steps`` steps and constant noise. x̃_i = G_s(l_i*) are the *transformed samples*.
    The mean L1 error before (at the initial latent) and after is logged (``d3t/inversion_l1_*``) and written
    to ``d3t.json`` with a grid of targets and transformed samples.

(b) Generator knowledge transfer (extra G loss terms, on a batch B of inverted latents each step):

        loss_g_d3t_rec = rec_weight · mean_i∈B |G_t(l_i*) − x_i|₁
        loss_g_d3t_mmd = mmd_weight · MMD²_k({φ(G_t(l_i*))}_B, {φ(x̃_i)}_B)

    The first makes the latent that the source maps to x̃_i map to x_i under the adapted generator (the
    self-supervised pair); the second keeps the adapted outputs at those latents distributed like the
    transformed samples in the frozen source discriminator's feature space (φ = its intermediate features,
    global-average-pooled and concatenated; "pixels" = 8×8 average-pooled images, also the fallback without a
    source discriminator), so what the source knows about these images' structure transfers. MMD² is the
    biased (V-statistic) estimate with the multi-bandwidth Gaussian kernel
    k(a, b) = Σ_σ exp(−|a − b|² / (2σ²·dim)), σ ∈ ``mmd_bandwidths``.

(c) Multi-level discriminator distillation (extra D loss terms): the target discriminator D_t's intermediate
    features (``return_features=True``) follow the frozen source D_s's on the same (augmented) inputs:

        loss_d_distill_real = distill_real_weight · Σ_k w_k · dist(D_t^k(x), D_s^k(x))   over the real batch
        loss_d_distill_fake = distill_fake_weight · Σ_k w_k · dist(D_t^k(G(z)), D_s^k(G(z))) over the fake batch

    dist = mean squared error ("l2") or 1 − cosine similarity per sample ("cosine"); w_k from
    ``distill_layer_weights`` (default 1 for every layer, or only ``distill_layers``).

The adversarial losses stay as in fine-tuning. Without a source discriminator (d_origin "fresh"), ctx.D is
random: distilling it is meaningless, so (c) is disabled with a warning and recorded in the method state and
``d3t.json``; (b) falls back to pixel features.

Recipe: no official code is available to us, so the trainer's fallbacks apply (``fsgen_hub.methods.recipes``
has no D3T entry).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from fsgen_hub.methods.base import AdaptationMethod, AdaptContext, MethodConfig, StepBatch, register_method
from fsgen_hub.methods.perceptual_terms import PERCEPTUAL_CHOICES, build_perceptual, source_has_discriminator
from fsgen_hub.utils.errors import FsgenError

logger = logging.getLogger(__name__)


@dataclass
class D3TConfig(MethodConfig):
    inversion_steps: int = field(default=200, metadata={"help": "Adam steps of the target-image inversion (a)"})
    inversion_lr: float = field(default=0.05, metadata={"help": "learning rate of the inversion"})
    inversion_candidates: int = field(
        default=64, metadata={"help": "z-space inversion starts from the best of N prior draws"})
    latent_space: str = field(default="w+", metadata={"help": "StyleGAN2 inversion space: z, w or w+ (DCGAN: z)"})
    inversion_perceptual: str = field(
        default="none", metadata={"help": "extra inversion term: none, laplacian, d_features, lpips_vgg"})
    inversion_perceptual_weight: float = field(default=1.0, metadata={"help": "weight of that term"})
    lpips_weights: str | None = field(
        default=None, metadata={"help": "path of torchvision's vgg16 weights (lpips_vgg)"})
    rec_weight: float = field(
        default=1.0, metadata={"help": "(b) L1 between G_t(inverted latent) and its target image"})
    mmd_weight: float = field(
        default=1.0, metadata={"help": "(b) MMD between G_t and G_s outputs at the inverted latents"})
    mmd_features: str = field(
        default="d_features", metadata={"help": "(b) feature space: d_features (frozen source D) or pixels"})
    mmd_bandwidths: list[float] = field(
        default_factory=lambda: [0.5, 1.0, 2.0, 4.0],
        metadata={"help": "(b) Gaussian kernel bandwidths (relative to sqrt(feature dim))"})
    distill_real_weight: float = field(default=1.0, metadata={"help": "(c) D feature distillation on real images"})
    distill_fake_weight: float = field(default=1.0, metadata={"help": "(c) D feature distillation on generated images"})
    distill_distance: str = field(default="l2", metadata={"help": "(c) l2 (mean squared error) or cosine"})
    distill_layers: list[str] | None = field(
        default=None, metadata={"help": "(c) D feature names to distil (default all)"})
    distill_layer_weights: dict[str, float] = field(
        default_factory=dict, metadata={"help": "(c) per-layer weights (default 1)"})

    def __post_init__(self):
        if self.inversion_steps < 0 or self.inversion_lr <= 0 or self.inversion_candidates < 1:
            raise FsgenError("D3T: inversion_steps must be >= 0, inversion_lr positive and inversion_candidates >= 1")
        if self.latent_space not in ("z", "w", "w+"):
            raise FsgenError(f"D3T: latent_space must be z, w or w+, not {self.latent_space!r}")
        if self.inversion_perceptual not in PERCEPTUAL_CHOICES:
            raise FsgenError(f"D3T: inversion_perceptual must be one of {', '.join(PERCEPTUAL_CHOICES)}")
        if self.mmd_features not in ("d_features", "pixels"):
            raise FsgenError("D3T: mmd_features must be d_features or pixels")
        if self.distill_distance not in ("l2", "cosine"):
            raise FsgenError("D3T: distill_distance must be l2 or cosine")
        if not self.mmd_bandwidths or any(b <= 0 for b in self.mmd_bandwidths):
            raise FsgenError("D3T: mmd_bandwidths must be a non-empty list of positive numbers")


# ----------------------------------------------------------------------------- helpers
def synthesize(G: nn.Module, latents: torch.Tensor, space: str) -> torch.Tensor:
    """G at latents of ``space`` (one of ``G.latent_spaces``), with constant noise so that an inversion is reproducible."""
    return G.synthesize(latents, space, noise_mode="const")


@torch.no_grad()
def initial_latents(G: nn.Module, images: torch.Tensor, space: str, candidates: int = 64,
                    seed: int = 0) -> torch.Tensor:
    """The generator's own start where it has one (StyleGAN2 w / w+: the mean w); z: per image, the best (L1) of
    ``candidates`` prior draws (z = 0 is a poor start for a DCGAN: a fresh BatchNorm maps it to 0 and the ReLU
    passes no gradient)."""
    n = len(images)
    start = G.latent_start(n, space)
    if start is not None:
        return start
    pool = torch.randn(max(1, candidates), G.z_dim, generator=torch.Generator().manual_seed(int(seed))).to(G.device)
    rendered = torch.cat([synthesize(G, pool[i:i + 16], "z") for i in range(0, len(pool), 16)])
    errors = (rendered[None] - images[:, None]).abs().flatten(2).mean(2)  # (n, candidates)
    return pool[errors.argmin(1)].clone()


def invert_images(G: nn.Module, images: torch.Tensor, *, steps: int, lr: float, space: str = "w+",
                  perceptual=None, perceptual_weight: float = 1.0, candidates: int = 64,
                  seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Latents l* minimising L1 (+ perceptual) between G(l) and ``images``; also the per-image L1 before/after."""
    space = space if space in G.latent_spaces else "z"
    G.eval()
    latents = initial_latents(G, images, space, candidates, seed).requires_grad_(True)
    opt = torch.optim.Adam([latents], lr=lr)
    with torch.no_grad():
        before = (synthesize(G, latents, space) - images).abs().flatten(1).mean(1)
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        recon = synthesize(G, latents, space)
        loss = (recon - images).abs().mean()
        if perceptual is not None and perceptual_weight:
            loss = loss + perceptual_weight * perceptual(recon, images)
        loss.backward()
        opt.step()
    with torch.no_grad():
        after = (synthesize(G, latents, space) - images).abs().flatten(1).mean(1)
    return latents.detach(), before.cpu(), after.cpu()


def mmd2(x: torch.Tensor, y: torch.Tensor, bandwidths: list[float]) -> torch.Tensor:
    """Biased MMD² with k(a, b) = Σ_σ exp(−|a − b|² / (2σ²·dim)); x, y: (n, dim), (m, dim)."""
    dim = x.shape[1]
    xy = torch.cat([x, y])
    d2 = torch.cdist(xy, xy).pow(2) / dim
    k = sum(torch.exp(-d2 / (2 * s * s)) for s in bandwidths)
    n = len(x)
    return k[:n, :n].mean() + k[n:, n:].mean() - 2 * k[:n, n:].mean()


def pooled_features(D: nn.Module | None, images: torch.Tensor) -> torch.Tensor:
    """(N, F): the frozen discriminator's features, each layer global-average-pooled; pixels when D is None."""
    if D is None:
        return F.adaptive_avg_pool2d(images, 8).flatten(1)
    feats = D(images, return_features=True)[1]
    return torch.cat([f.mean((2, 3)) if f.ndim == 4 else f.flatten(1) for f in feats.values()], 1)


def feature_distance(a: torch.Tensor, b: torch.Tensor, kind: str) -> torch.Tensor:
    if kind == "cosine":
        return (1 - F.cosine_similarity(a.flatten(1), b.flatten(1), dim=1)).mean()
    return (a - b).pow(2).mean()


class D3T(AdaptationMethod):
    description = "D3T-GAN: invert the shots into the source G, transfer from those reconstructions, distil D features"
    paper = "Wu et al., D3T-GAN, arXiv:2205.06032 (TOMM 2023)"

    def prepare(self, ctx: AdaptContext) -> None:
        c = self.config
        G = ctx.unwrap(ctx.G)
        self.source_G = ctx.frozen_copy("source_G", G)
        self.has_source_D = source_has_discriminator(ctx)
        self.source_D = ctx.frozen_copy("source_D", ctx.D) if self.has_source_D else None
        if self.source_D is not None:
            for m in self.source_D.modules():  # train-mode passes (see _distill) must not move its statistics
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.momentum = 0.0
        self.notes: list[str] = []
        if not self.has_source_D:
            note = ("the source has no discriminator (ctx.D is random): discriminator distillation (c) disabled"
                    + (", MMD features fall back to pixels" if c.mmd_weight and c.mmd_features == "d_features" else ""))
            logger.warning("D3T: %s", note)
            self.notes.append(note)
        self.distill = self.has_source_D and bool(c.distill_real_weight or c.distill_fake_weight)
        self.space = c.latent_space if c.latent_space in G.latent_spaces else "z"
        perceptual = build_perceptual(c.inversion_perceptual, ctx, lpips_weights=c.lpips_weights, who="D3T")
        images = ctx.train_images
        with torch.enable_grad():
            self.latents, before, after = invert_images(
                self.source_G, images, steps=c.inversion_steps, lr=c.inversion_lr, space=self.space,
                perceptual=perceptual, perceptual_weight=c.inversion_perceptual_weight,
                candidates=c.inversion_candidates, seed=int(getattr(ctx.args, "seed", 0)))
        self.inversion = {"latent_space": self.space, "steps": c.inversion_steps,
                          "l1_before": before.tolist(), "l1_after": after.tolist(),
                          "mean_l1_before": float(before.mean()), "mean_l1_after": float(after.mean())}
        logger.info("D3T inversion: mean L1 %.4f -> %.4f", before.mean(), after.mean())
        self._prepare_targets(ctx)
        self._last_images: dict[str, torch.Tensor] = {}
        self._logged_inversion = False

    def _prepare_targets(self, ctx: AdaptContext) -> None:
        with torch.no_grad():
            self.transformed = synthesize(self.source_G, self.latents, self.space)  # x̃_i
            self.feature_D = self.source_D if self.config.mmd_features == "d_features" else None
            self.transformed_features = pooled_features(self.feature_D, self.transformed)

    # --- hooks ---------------------------------------------------------------------------
    def on_step_end(self, ctx: AdaptContext, step: int) -> None:
        if not self._logged_inversion:  # trackers exist only once the loop runs
            ctx.log({"d3t/inversion_l1_before": self.inversion["mean_l1_before"],
                     "d3t/inversion_l1_after": self.inversion["mean_l1_after"]})
            self._logged_inversion = True

    def discriminate(self, ctx: AdaptContext, images: torch.Tensor, *, real: bool, step: int):
        # remember the exact (augmented) inputs: the source D must see the same images in discriminator_loss
        self._last_images["real" if real else "fake"] = images.detach()
        return ctx.D(images, return_features=True)

    def generator_loss(self, ctx: AdaptContext, batch: StepBatch) -> dict[str, torch.Tensor]:
        c = self.config
        if not (c.rec_weight or c.mmd_weight):
            return {}
        n = len(self.latents)
        size = min(n, batch.fake.shape[0]) if batch.fake is not None else n
        idx = torch.randperm(n)[:size].to(self.latents.device)
        out = synthesize(ctx.G, self.latents[idx], self.space)
        terms = {}
        if c.rec_weight:
            terms["loss_g_d3t_rec"] = c.rec_weight * (out - ctx.train_images[idx]).abs().mean()
        if c.mmd_weight:
            feats = pooled_features(self.feature_D, out)
            terms["loss_g_d3t_mmd"] = c.mmd_weight * mmd2(feats, self.transformed_features[idx], c.mmd_bandwidths)
        return terms

    def _distill(self, ctx: AdaptContext, target: dict[str, torch.Tensor], images: torch.Tensor) -> torch.Tensor:
        c = self.config
        # run the source D in the target D's mode (BatchNorm on batch statistics, as D_t), so that equal weights
        # give equal features; its momentum is 0, so its running statistics stay the source's
        was_training = self.source_D.training
        self.source_D.train(ctx.unwrap(ctx.D).training)
        try:
            with torch.no_grad():
                source = self.source_D(images, return_features=True)[1]
        finally:
            self.source_D.train(was_training)
        names = c.distill_layers if c.distill_layers is not None else list(target)
        missing = [k for k in names if k not in target or k not in source]
        if missing:
            raise FsgenError(f"D3T: discriminator has no feature {missing[0]!r}; available: {', '.join(target)}")
        total = sum(c.distill_layer_weights.get(k, 1.0) * feature_distance(target[k], source[k], c.distill_distance)
                    for k in names)
        return total / max(1, len(names))

    def discriminator_loss(self, ctx: AdaptContext, batch: StepBatch) -> dict[str, torch.Tensor]:
        c = self.config
        if not self.distill:
            return {}
        terms = {}
        if c.distill_real_weight and batch.real_d_features is not None:
            loss = self._distill(ctx, batch.real_d_features, self._last_images["real"])
            terms["loss_d_distill_real"] = c.distill_real_weight * loss
        if c.distill_fake_weight and batch.fake_d_features is not None:
            loss = self._distill(ctx, batch.fake_d_features, self._last_images["fake"])
            terms["loss_d_distill_fake"] = c.distill_fake_weight * loss
        return terms

    # --- persistence and artifacts -------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"latents": self.latents.detach().cpu(), "inversion": dict(self.inversion), "notes": list(self.notes),
                "distill": self.distill}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.latents = state["latents"].to(self.latents.device)
        self.inversion = dict(state.get("inversion", self.inversion))
        self.notes = list(state.get("notes", self.notes))
        with torch.no_grad():
            self.transformed = synthesize(self.source_G, self.latents, self.space)
            self.transformed_features = pooled_features(self.feature_D, self.transformed)

    def write_artifacts(self, ctx: AdaptContext, output_dir) -> dict[str, str]:
        from fsgen_hub.utils.images import save_image_grid
        from fsgen_hub.utils.io import write_json

        output_dir = Path(output_dir)
        write_json(output_dir / "d3t.json", {
            "inversion": self.inversion,
            "distillation": "enabled" if self.distill else "disabled",
            "mmd_features": "d_features" if self.feature_D is not None else "pixels",
            "notes": self.notes,
        })
        shown = min(8, len(self.latents))
        pair = torch.cat([ctx.train_images[:shown], self.transformed[:shown].to(ctx.train_images.device)]).float()
        save_image_grid((pair.clamp(-1, 1) + 1) / 2, output_dir / "d3t_inversion.png", nrow=shown)
        return {"d3t": "d3t.json", "d3t_inversion": "d3t_inversion.png"}


register_method("d3t", D3TConfig, D3T)
