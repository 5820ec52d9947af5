"""Base classes shared by every architecture: the generator/discriminator API methods rely on.

Conventions (every architecture follows them, methods and metrics rely on them):
- ``G(z, truncation=1.0, noise_mode="random", return_features=False)`` maps latents ``z`` of shape
  ``(N, z_dim)`` to images in ``[-1, 1]``, NCHW, ``resolution`` x ``resolution``. With
  ``return_features=True`` it returns ``(images, features)`` where ``features`` is an ordered dict of
  named intermediate activations, lowest resolution first.
- ``D(images, return_features=False)`` returns logits of shape ``(N, 1)`` (no sigmoid); with
  ``return_features=True`` it returns ``(logits, features)``, highest resolution first.
- ``filter_layers()`` lists the hidden convolution filter banks that methods (AdaFM, RICK, DAP,
  slimmed export) address, ordered from the input (low resolution) to the output; the RGB output
  convolutions (toRGB) are not in it, since their "filters" are colour channels.
"""
from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch
from torch import nn

from fsgen_hub.models.modeling_utils import HubModel


@dataclass
class FilterLayer:
    """One bank of convolution filters that can be pruned, frozen or modulated filter by filter.

    ``weight.select(out_dim, i)`` is filter ``i``; ``in_dim`` is the axis of input channels.
    ``coupled`` lists other parameters/buffers indexed by the same output filter along the given
    axis (bias, BN affine and running stats...) so that slimming and masking treat them together.
    ``modulation`` is, for StyleGAN2 modulated convs, the affine that produces the per-input-channel
    style of this layer. ``consumers`` lists the downstream parameters that READ filter ``i``'s
    output, as (name, axis): the next convs' input-channel slices and, for StyleGAN2, the style-affine
    rows that scale that input. Zeroing a filter together with its consumer slices removes it exactly,
    so a masked model and a physically slimmed one compute the same images.
    """

    name: str
    module: nn.Module
    weight: nn.Parameter
    out_dim: int
    in_dim: int
    resolution: int
    coupled: list[tuple[str, int]] = field(default_factory=list)
    modulation: nn.Module | None = None
    consumers: list[tuple[str, int]] = field(default_factory=list)

    @property
    def num_filters(self) -> int:
        return self.weight.shape[self.out_dim]


@dataclass
class FisherUnit:
    """A bank of filters scored and decided together by RICK-style Fisher rules (RICK, DAP).

    ``entries`` are (parameter name, filter axis). A filter's score is the mean, over the entries, of
    the per-filter mean of that parameter's Fisher along every other axis (RICK: a conv's kernel and
    its activation bias count equally). ``group`` pools units for shared thresholds: RICK pools every
    generator conv ("conv"), every style affine ("modulation") and every discriminator conv ("conv")
    separately. ``strict_prune`` marks units that RICK prunes with ``score < line`` instead of ``<=``
    (its D skip convolutions). Freezing or pruning a filter acts on the same slices of every entry.
    """

    name: str
    group: str
    entries: list[tuple[str, int]]
    strict_prune: bool = False


def named_groups(model: nn.Module, patterns: dict[str, list[str]]) -> dict[str, list[str]]:
    """Parameter names per group from fnmatch patterns; every parameter lands in exactly one group."""
    groups: dict[str, list[str]] = {name: [] for name in patterns}
    for pname, _ in model.named_parameters():
        owner = next((g for g, pats in patterns.items() if any(fnmatch.fnmatch(pname, p) for p in pats)), None)
        if owner is None:
            raise RuntimeError(f"{type(model).__name__}: parameter {pname} belongs to no parameter group")
        groups[owner].append(pname)
    return groups


class BaseGenerator(nn.Module, HubModel):
    role = "generator"
    # Adam settings the trainer uses unless told otherwise (the architecture's own training recipe)
    optimizer_defaults = {"lr_g": 2e-3, "lr_d": 2e-3, "beta1": 0.0, "beta2": 0.99}

    @property
    def z_dim(self) -> int:
        raise NotImplementedError

    @property
    def resolution(self) -> int:
        raise NotImplementedError

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def forward(self, z, truncation: float = 1.0, noise_mode: str = "random", return_features: bool = False):
        raise NotImplementedError

    def filter_layers(self) -> list[FilterLayer]:
        raise NotImplementedError

    # Whether forward() accepts ``mix_z``/``mix_index`` (style mixing) and ``input_space="w+"``
    # (path-length regularisation); architectures without a style space leave these off.
    has_style_space = False
    # The latent spaces synthesize() takes (methods choose among them, e.g. D3T's inversion): "z" always.
    latent_spaces: tuple[str, ...] = ("z",)
    # The config field holding the widths of filter_layers(), in their order: what slimming rewrites.
    filter_widths_field = ""

    def synthesize(self, latents: torch.Tensor, space: str = "z", noise_mode: str = "const") -> torch.Tensor:
        """Images in [-1, 1] from latents of ``space`` (one of ``latent_spaces``)."""
        if space != "z":
            raise ValueError(f"{type(self).__name__} takes latents in {self.latent_spaces}, not {space!r}")
        return self(latents, noise_mode=noise_mode)

    def latent_start(self, n: int, space: str) -> torch.Tensor | None:
        """Where an inversion of ``n`` images into ``space`` starts, or None when the space has no natural
        start (z: the caller searches prior draws)."""
        return None

    def parameter_groups(self) -> dict[str, list[str]]:
        """Parameter names by role: "mapping" (z → style network), "const" (learned input), "conv1"
        (the first, lowest-resolution conv), "synthesis" (the other hidden convs and their biases,
        noise strengths and style affines), "torgb" (the RGB output layers). A group may be empty.
        Methods name groups, never architecture-specific parameter names."""
        raise NotImplementedError

    def fisher_units(self) -> list[FisherUnit]:
        """The filter banks RICK-style methods score, freeze and prune (input side first)."""
        raise NotImplementedError

    def select_filter_layers(self, patterns: str | list[str] | None = None) -> list[FilterLayer]:
        """Filter layers whose name matches any of the fnmatch ``patterns`` (all when None or "*")."""
        layers = self.filter_layers()
        if not patterns:
            return layers
        patterns = [patterns] if isinstance(patterns, str) else list(patterns)
        return [layer for layer in layers if any(fnmatch.fnmatch(layer.name, p) for p in patterns)]

    def make_latents(self, n: int, seed: int = 0) -> torch.Tensor:
        """``n`` latents from ONE stream seeded by ``seed`` (drawn on the CPU: the same on every device).

        The stream names the batch, not an image: row 0 of ``make_latents(3, s)`` need not equal
        ``make_latents(1, s)``. Use :meth:`seed_latents` to name single images.
        """
        gen = torch.Generator().manual_seed(int(seed))
        return torch.randn(n, self.z_dim, generator=gen)

    def seed_latents(self, seeds) -> torch.Tensor:
        """One latent per seed, independent of the other seeds, of their number and of the batch size.

        The NVlabs ``gen_images.py`` convention (``np.random.RandomState(seed).randn(1, z_dim)``), so
        "seed 1234" of a converted NVlabs generator is the image NVlabs users know by that number.
        """
        seeds = [int(s) for s in seeds]
        if not seeds:
            raise ValueError("seeds must name at least one seed")
        if any(not 0 <= s < 2**32 for s in seeds):
            raise ValueError("seeds must be between 0 and 2**32 - 1")
        z = np.stack([np.random.RandomState(s).randn(self.z_dim) for s in seeds])
        return torch.from_numpy(z).float()

    @torch.no_grad()
    def sample(
        self,
        n: int | None = None,
        seed: int = 0,
        truncation: float = 1.0,
        batch_size: int = 8,
        device: str | torch.device | None = None,
        output_type: Literal["pil", "pt", "np"] = "pil",
        noise_mode: str = "const",
        z: torch.Tensor | None = None,
        seeds=None,
        generator: torch.Generator | list[torch.Generator] | None = None,
    ):
        """Generate images; exactly one of four ways names the latents:

        - ``seeds=[0, 1, 5]``: one image per seed (:meth:`seed_latents`); image ``i`` depends on
          ``seeds[i]`` only, whatever the count or the batch size (NVlabs ``--seeds``);
        - ``generator=torch.Generator().manual_seed(0)`` (or a list, one per image): latents drawn
          from it, as diffusers pipelines do (``n`` images, default 1, or one per generator);
        - ``z``: the latents themselves;
        - ``n`` and ``seed`` (default): ``n`` latents from one stream seeded by ``seed``: the seed
          names the whole batch, and ``sample(1, seed=5)[0]`` differs from ``sample(3, seed=5)[0]``.

        ``noise_mode="random"`` draws StyleGAN2's per-layer noise from ``seed`` (with ``seeds``: from
        each image's own seed, image by image). ``output_type``: "pil" → list of PIL images; "pt" →
        float tensor (N, 3, H, W) in [0, 1]; "np" → uint8 array (N, H, W, 3).
        """
        if sum(x is not None for x in (z, seeds, generator)) > 1:
            raise ValueError("pass only one of z=, seeds= and generator=")
        device = torch.device(device) if device is not None else self.device
        if seeds is not None:
            z = self.seed_latents(seeds)
        elif generator is not None:
            z = self._generator_latents(n, generator)
        elif z is None:
            n = 1 if n is None else n
            if n < 1:
                raise ValueError("n must be at least 1")
            z = self.make_latents(n, seed)
        if n is not None and n != len(z):
            raise ValueError(f"n={n} but {len(z)} latents were given")
        dtype = next(self.parameters()).dtype
        was_training = self.training
        self.eval()
        chunks = []
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            if seeds is not None and noise_mode == "random":  # each image's noise from its own seed
                for image_seed, latent in zip(seeds, z):
                    torch.manual_seed(int(image_seed))
                    chunks.append(self._render(latent[None], device, dtype, truncation, noise_mode))
            else:
                torch.manual_seed(int(seed))  # per-layer noise when noise_mode="random"
                for start in range(0, len(z), batch_size):
                    chunks.append(self._render(z[start : start + batch_size], device, dtype, truncation, noise_mode))
        self.train(was_training)
        images = (torch.cat(chunks).clamp(-1, 1) + 1) / 2
        if images.shape[1] == 1:  # grayscale models (e.g. MNIST DCGANs) give RGB images like the others
            images = images.expand(-1, 3, -1, -1)
        if output_type == "pt":
            return images
        array = (images * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
        if output_type == "np":
            return array
        if output_type != "pil":
            raise ValueError(f"output_type must be 'pil', 'pt' or 'np', not {output_type!r}")
        from PIL import Image

        return [Image.fromarray(np.ascontiguousarray(a)) for a in array]

    def _render(self, z, device, dtype, truncation, noise_mode) -> torch.Tensor:
        return self(z.to(device=device, dtype=dtype), truncation=truncation, noise_mode=noise_mode).float().cpu()

    def _generator_latents(self, n: int | None, generator) -> torch.Tensor:
        """diffusers convention: one generator draws ``n`` latents; a list gives one latent per generator."""
        if isinstance(generator, (list, tuple)):
            if n is not None and n != len(generator):
                raise ValueError(f"n={n} but {len(generator)} generators were given")
            return torch.cat([self._generator_latents(1, g) for g in generator])
        n = 1 if n is None else n
        if n < 1:
            raise ValueError("n must be at least 1")
        return torch.randn(n, self.z_dim, generator=generator, device=generator.device).cpu()


class BaseDiscriminator(nn.Module, HubModel):
    role = "discriminator"

    @property
    def resolution(self) -> int:
        raise NotImplementedError

    def forward(self, images, return_features: bool = False):
        raise NotImplementedError

    def blocks(self) -> list[list[tuple[str, nn.Parameter]]]:
        """Named parameters grouped by block, from the image input to the logits (FreezeD counts these)."""
        raise NotImplementedError

    def parameter_groups(self) -> dict[str, list[str]]:
        """Parameter names by role: "from_rgb" (the first block, reading pixels), "blocks" (the hidden
        blocks after it), "final" (the layers that map the last features to the logit)."""
        blocks = self.blocks()
        names = lambda bs: [n for b in bs for n, _ in b]  # noqa: E731
        return {"from_rgb": names(blocks[:1]), "blocks": names(blocks[1:-self.final_blocks]),
                "final": names(blocks[-self.final_blocks:])}

    final_blocks = 1  # how many of blocks() (from the end) form the "final" group

    def fisher_units(self) -> list[FisherUnit]:
        """The filter banks RICK-style methods score, freeze and prune (input side first)."""
        raise NotImplementedError
