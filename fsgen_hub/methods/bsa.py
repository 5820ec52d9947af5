"""BSA: batch statistics adaptation (Noguchi & Harada, "Image Generation from Small Datasets via Batch
Statistics Adaptation", ICCV 2019, arXiv:1904.01774).

No discriminator and no adversarial loss: the source generator is frozen and only

- a per-channel scale s and shift t of every selected hidden layer's normalised features, and
- one latent z_i per training image (``nn.Parameter`` (N, z_dim), init N(0, ``latent_init_std``²))

are learned so that G(z_i) reconstructs image i:

    L = l1_weight · |G(z_i + ε) − x_i|₁ + perceptual_weight · P(G(z_i + ε), x_i)
        + reg_weight · Σ_layers (mean (s − 1)² + mean t²) + prior_weight · EMD(z, N(0, I))

with ε ~ N(0, ``latent_noise``²) as in the reference code, and EMD the symmetric nearest-neighbour
distance between the latents and 10·N prior draws (the reference code's "earth mover" term), which keeps
the learned latents where the prior puts its mass.

Where the statistics live:

- DCGAN: the BatchNorm after each selected ConvTranspose. Its running (source) statistics are kept and
  BN runs in eval mode throughout (the reference code trains with ``train: False``), so s/t act on the
  normalised features exactly like the BN affine: BN.weight' = s·weight, BN.bias' = s·bias + t (baked).
- StyleGAN2: the "normalisation" is weight demodulation. The shift t is added to the demodulated conv
  output (baked into the layer's activation bias). The scale s of a layer's output channel c is applied
  where that channel is read: it scales row c of the style affine (weight and bias) of every reader (the
  next modulated conv and the toRGB), i.e. the modulation of input channel c. For the toRGB (no
  demodulation) this is exactly scaling the feature; the next conv renormalises its kernels, so there s
  re-weights channels relative to each other. Both are exact to bake: a plain StyleGAN2 comes out.

Sampling "as in the paper": the reference code draws random latents from the prior, N(0, σ²) with σ
(``tmp_for_test``) 0.3–0.5, and the EMD term is what makes that meaningful. After export ``G.sample``
draws N(0, I); for a DCGAN ``G.sample(truncation=σ)`` is exactly N(0, σ²) (DCGAN truncation scales z).
StyleGAN2 normalises z (PixelNorm), so only directions matter and its truncation acts in w space. A
Gaussian fit of the learned latents (mean, Cholesky factor of covariance + 1e-3·I: with N shots the
covariance has rank ≤ N−1) is written to ``bsa_latents.safetensors`` with the latents themselves;
``sample_latent_fit`` draws from it (pass the result as ``G.sample(z=...)``). It cannot be baked into the
generator: DCGAN's first ConvTranspose has no bias to absorb the mean (W·μ is spatially varying), and
StyleGAN2's PixelNorm precedes the mapping network.

Perceptual term P (``perceptual``): "laplacian" (default, weight-free: L1 between Laplacian pyramids,
mean over levels), "d_features" (L1 between the frozen *source* discriminator's intermediate features;
needs a source discriminator), "lpips_vgg" (LPIPS with the ImageNet VGG backbone, found as
``fsgen_hub.metrics.intra_lpips`` finds it; a clear MissingWeightsError otherwise), or "none".

Recipe (``fsgen_hub.methods.recipes``; github.com/nogu-atsu/small-dataset-image-generation
``configs/default.yml``): batch 25 (its SNGAN setting), no discriminator, no augmentation. Its
``init_lr`` 0.03 with exponential decay every 3,000 of 10,000 iterations is not transferred.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from fsgen_hub.methods.base import AdaptContext, MethodConfig, StepBatch, register_method
from fsgen_hub.methods.delta import AdapterParametrization, register, split_name
from fsgen_hub.methods.modulation import ModulationMethod
from fsgen_hub.methods.perceptual_terms import PERCEPTUAL_CHOICES, build_perceptual
from fsgen_hub.utils.errors import CheckpointError, FsgenError

LATENTS_FILE = "bsa_latents.safetensors"
COVARIANCE_JITTER = 1e-3


@dataclass
class BSAConfig(MethodConfig):
    layers: list[str] = field(
        default_factory=lambda: ["*"],
        metadata={"help": "fnmatch patterns of generator filter layers whose channels get scale/shift"})
    l1_weight: float = field(default=1.0, metadata={"help": "weight of the pixel L1 reconstruction loss"})
    perceptual: str = field(
        default="laplacian", metadata={"help": "perceptual term: none, laplacian, d_features or lpips_vgg"})
    perceptual_weight: float = field(default=1.0, metadata={"help": "weight of the perceptual term"})
    laplacian_levels: int = field(
        default=4, metadata={"help": "levels of the Laplacian pyramid (perceptual=laplacian)"})
    lpips_weights: str | None = field(
        default=None, metadata={"help": "path of torchvision's vgg16 weights (lpips_vgg)"})
    reg_weight: float = field(default=0.02, metadata={"help": "lambda of (s-1)^2 + t^2 (the reference code's l_re)"})
    prior_weight: float = field(
        default=0.1, metadata={"help": "weight of the EMD term pulling latents to N(0, I) (l_emd)"})
    latent_init_std: float = field(default=0.1, metadata={"help": "initial latents ~ N(0, std^2)"})
    latent_noise: float = field(default=0.01, metadata={"help": "std of the noise added to the latents at each step"})
    latent_lr: float = field(
        default=0.05, metadata={"help": "Adam learning rate of the latents (reference code: 0.05)"})
    lr: float | None = field(default=None, metadata={"help": "learning rate of scale/shift (default: --lr-g)"})

    def __post_init__(self):
        if self.perceptual not in PERCEPTUAL_CHOICES:
            raise FsgenError(f"BSA: perceptual must be one of {', '.join(PERCEPTUAL_CHOICES)}, not {self.perceptual!r}")
        if self.laplacian_levels < 1 or self.latent_lr <= 0 or (self.lr is not None and self.lr <= 0):
            raise FsgenError("BSA: laplacian_levels must be >= 1 and learning rates positive")


# ----------------------------------------------------------------------------- shared loss helpers
def emd_to_prior(z: torch.Tensor, factor: int = 10) -> torch.Tensor:
    """Symmetric nearest-neighbour squared distance between ``z`` and ``factor``·N draws of N(0, I)."""
    t = torch.randn(len(z) * factor, z.shape[1], device=z.device, dtype=z.dtype)
    dist = (z * z).sum(1, keepdim=True) - 2 * z @ t.t() + (t * t).sum(1)
    return dist.min(0).values.mean() + dist.min(1).values.mean()


def fit_latents(latents: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and Cholesky factor of the covariance (+ jitter·I) of the learned latents."""
    latents = latents.detach().double().cpu()
    mean = latents.mean(0)
    centred = latents - mean
    cov = centred.t() @ centred / max(1, len(latents) - 1)
    scale_tril = torch.linalg.cholesky(cov + COVARIANCE_JITTER * torch.eye(latents.shape[1], dtype=torch.float64))
    return mean.float(), scale_tril.float()


def sample_latent_fit(mean: torch.Tensor, scale_tril: torch.Tensor, n: int, seed: int = 0) -> torch.Tensor:
    """n latents from N(mean, L Lᵀ), drawn on the CPU from ``seed``; use as ``G.sample(n, z=...)``."""
    eps = torch.randn(n, mean.numel(), generator=torch.Generator().manual_seed(int(seed)))
    return mean + eps @ scale_tril.t()


def load_latent_fit(model_dir) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean, scale_tril) from a BSA run folder's ``bsa_latents.safetensors``."""
    from safetensors.torch import load_file

    path = Path(model_dir) / LATENTS_FILE
    if not path.is_file():
        raise CheckpointError(f"{path} is missing: only BSA runs write it")
    data = load_file(str(path))
    return data["mean"], data["scale_tril"]


# ----------------------------------------------------------------------------- parametrization
class ChannelAffine(AdapterParametrization):
    """X ↦ X·s + t along ``axis`` (either part optional); s and t may be shared with other tensors."""

    def __init__(self, key: str, axis: int, ndim: int, scale: nn.Parameter | None, shift: nn.Parameter | None):
        super().__init__(key)
        self.axis, self.ndim = axis, ndim
        self.scale, self.shift = scale, shift

    def _view(self, v: torch.Tensor) -> torch.Tensor:
        shape = [1] * self.ndim
        shape[self.axis] = -1
        return v.view(shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.scale is not None:
            x = x * self._view(self.scale)
        if self.shift is not None:
            x = x + self._view(self.shift)
        return x


def statistic_sites(G, patterns: list[str]) -> list[tuple[str, int, dict[str, tuple[int, bool, bool]]]]:
    """[(layer name, channels, {tensor name: (axis, scaled, shifted)})] for the selected filter layers."""
    layers = G.select_filter_layers(patterns) if patterns else []
    if not layers:
        raise FsgenError(f"BSA: no generator filter layer matches {patterns}; "
                         f"available: {', '.join(layer.name for layer in G.filter_layers())}")
    sites = []
    for layer in layers:
        coupled = dict(layer.coupled)
        bn = [name[: -len(".running_mean")] for name in coupled if name.endswith(".running_mean")]
        targets: dict[str, tuple[int, bool, bool]] = {}
        if bn:  # BatchNorm: s·(weight·x̂ + bias) + t
            targets[f"{bn[0]}.weight"] = (0, True, False)
            targets[f"{bn[0]}.bias"] = (0, True, True)
        else:
            readers = [(name, axis) for name, axis in layer.consumers if ".modulation." in name]
            shifts = [(name, axis) for name, axis in layer.coupled if name.endswith("bias")]
            if not readers or not shifts:
                raise FsgenError(f"BSA: cannot find the per-channel statistics of {G.architecture} layer {layer.name}")
            for name, axis in readers:
                targets[name] = (axis, True, False)
            for name, axis in shifts:
                targets[name] = (axis, False, True)
        sites.append((layer.name, layer.num_filters, targets))
    return sites


def freeze_batchnorm(G: nn.Module) -> None:
    for m in G.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()  # normalise with the source's running statistics, never update them


class BSA(ModulationMethod):
    description = "BSA: learn per-channel scale/shift of hidden features and one latent per image by reconstruction"
    paper = "Noguchi & Harada, ICCV 2019 (arXiv:1904.01774)"
    uses_discriminator = False
    adversarial_weight = 0.0

    def attach(self, generator: nn.Module) -> None:
        device = next(generator.parameters()).device
        for key, channels, targets in statistic_sites(generator, self.config.layers):
            scale = nn.Parameter(torch.ones(channels, device=device))
            shift = nn.Parameter(torch.zeros(channels, device=device))
            for name, (axis, scaled, shifted) in targets.items():
                module, attr = split_name(generator, name)
                ndim = getattr(module, attr).ndim
                affine = ChannelAffine(key, axis, ndim, scale if scaled else None, shift if shifted else None)
                register(module, attr, affine)
                module.parametrizations[attr].original.requires_grad_(False)
        freeze_batchnorm(generator)

    def _site_parameters(self, G) -> list[tuple[nn.Parameter, nn.Parameter]]:
        pairs = {}
        for p in G.modules():
            if isinstance(p, ChannelAffine):
                entry = pairs.setdefault(p.key, [None, None])
                entry[0] = p.scale if p.scale is not None else entry[0]
                entry[1] = p.shift if p.shift is not None else entry[1]
        return [tuple(v) for v in pairs.values()]

    def prepare(self, ctx: AdaptContext) -> None:
        self.snapshot_base(ctx)
        G = ctx.unwrap(ctx.G)
        self.perceptual = build_perceptual(self.config.perceptual, ctx, levels=self.config.laplacian_levels,
                                           lpips_weights=self.config.lpips_weights)
        G.requires_grad_(False)
        self.attach(G)
        self.sites = self._site_parameters(G)
        n = len(ctx.train_images)
        init = torch.randn(n, G.z_dim, generator=torch.Generator().manual_seed(int(getattr(ctx.args, "seed", 0))))
        self.latents = nn.Parameter((init * self.config.latent_init_std).to(ctx.device))
        self._batch_idx: torch.Tensor | None = None
        self.model = G

    def generator_parameters(self, ctx: AdaptContext):
        group = {"params": [p for pair in self.sites for p in pair]}
        if self.config.lr is not None:
            group["lr"] = self.config.lr
        return [group, {"params": [self.latents], "lr": self.config.latent_lr}]

    def sample_latents(self, ctx: AdaptContext, batch_size: int) -> torch.Tensor:
        freeze_batchnorm(ctx.unwrap(ctx.G))  # in case anything switched the model back to training mode
        n = len(self.latents)
        idx = torch.randperm(n)[:batch_size] if batch_size <= n else torch.randint(n, (batch_size,))
        self._batch_idx = idx.to(self.latents.device)
        z = self.latents[self._batch_idx]
        return z + self.config.latent_noise * torch.randn_like(z)

    def generator_loss(self, ctx: AdaptContext, batch: StepBatch) -> dict[str, torch.Tensor]:
        target = ctx.train_images[self._batch_idx.to(ctx.train_images.device)]
        fake = batch.fake
        terms = {"loss_bsa_l1": self.config.l1_weight * (fake - target).abs().mean()}
        if self.perceptual is not None and self.config.perceptual_weight:
            terms["loss_bsa_perceptual"] = self.config.perceptual_weight * self.perceptual(fake, target)
        if self.config.reg_weight:
            reg = sum(((s - 1) ** 2).mean() + (t**2).mean() for s, t in self.sites)
            terms["loss_bsa_reg"] = self.config.reg_weight * reg
        if self.config.prior_weight:
            terms["loss_bsa_prior"] = self.config.prior_weight * emd_to_prior(self.latents)
        return terms

    def after_backward(self, ctx: AdaptContext, phase: str) -> None:
        if phase == "G":  # the trainer syncs G's parameters only
            ctx.sync_gradients([self.latents])

    # --- persistence, delta, artifacts ------------------------------------------------------
    def state_dict(self) -> dict:
        return {"latents": self.latents.detach().cpu().clone()}

    def load_state_dict(self, state: dict) -> None:
        with torch.no_grad():
            self.latents.copy_(state["latents"].to(self.latents.device))

    def extra_adapter_tensors(self) -> dict[str, torch.Tensor]:
        return {"latents": self.latents.detach()}

    def load_extra_adapter_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        if set(tensors) != {"latents"}:
            raise CheckpointError(f"a BSA delta holds its latents and nothing else, got {sorted(tensors)[:3]}")
        self.latents = nn.Parameter(tensors["latents"].clone(), requires_grad=False)

    def write_artifacts(self, ctx: AdaptContext, output_dir) -> dict[str, str]:
        from safetensors.torch import save_file

        from fsgen_hub.utils.images import save_image_grid
        from fsgen_hub.utils.io import atomic_path

        artifacts = super().write_artifacts(ctx, output_dir)
        output_dir = Path(output_dir)
        mean, scale_tril = fit_latents(self.latents)
        with atomic_path(output_dir / LATENTS_FILE) as tmp:
            save_file({"latents": self.latents.detach().cpu().contiguous(), "mean": mean.contiguous(),
                       "scale_tril": scale_tril.contiguous()}, str(tmp))
        with torch.no_grad():
            shown = min(8, len(self.latents))
            recon = ctx.G_ema(self.latents[:shown].to(ctx.device), noise_mode="const")
            pair = torch.cat([ctx.train_images[:shown], recon.to(ctx.train_images.device)]).float()
        save_image_grid((pair.clamp(-1, 1) + 1) / 2, output_dir / "bsa_reconstructions.png", nrow=shown)
        artifacts.update({"bsa_latents": LATENTS_FILE, "reconstructions": "bsa_reconstructions.png"})
        return artifacts


register_method("bsa", BSAConfig, BSA)
