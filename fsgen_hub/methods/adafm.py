"""AdaFM: adaptive filter modulation (Zhao, Cong & Carin, "On Leveraging Pretrained GANs for Generation with
Limited Data", ICML 2020, arXiv:2002.11810).

For every modulated conv layer the source kernel W (out × in × k × k) is frozen and two small matrices are
learned, γ (out × in, init 1) and β (out × in, init 0), broadcast over the k × k kernel:

    W' = γ ⊙ W + β

so each (output, input) kernel keeps its spatial pattern (the general, low-level "style" of the source) and
only its scale and offset adapt. Implemented as a ``torch.nn.utils.parametrize`` parametrization of the
weight: the frozen W is the parametrization's ``original`` (requires_grad False, never touched), γ/β are the
only new parameters; ``export`` bakes W' into a plain generator of the same class, and the delta
(``<run>/adapter``) stores γ/β plus whatever else moved.

Axes: StyleGAN2 ``ModulatedConv2d`` weights are (1, out, in, k, k); DCGAN ``ConvTranspose2d`` weights are
(in, out, k, k). γ/β are always stored (out, in) and placed by the layer's ``out_dim``/``in_dim``.

Which layers (the paper's split): the high-level, low-resolution blocks are trained (they carry what is
specific to the source domain), the low-level blocks near the output are frozen and AdaFM-modulated (their
filters are general). The paper trains its generator's blocks up to 16 × 16 of a 128 px model and modulates
the rest. Default here (``layers`` unset): modulate every filter layer at ``min_resolution`` (8) and above,
train the first (4 × 4) block:

- DCGAN: ``main.0`` (+ its BatchNorm ``main.1``) trained; ``main.3``, ``main.6``... modulated; the RGB output
  conv is frozen (the paper freezes its ``conv_img``); BatchNorm affines of modulated blocks are frozen.
- StyleGAN2: mapping network ``style.*``, constant ``input``, ``conv1`` and ``to_rgb1`` trained; ``convs.*``
  modulated; their noise strengths, activation biases, style affines and the higher ``to_rgbs`` frozen (the
  paper freezes everything of the modulated blocks but γ/β).

``train`` (fnmatch patterns over parameter names) replaces that preset; ``train=[]`` learns γ/β only. A
modulated weight is never trained, whatever the patterns. The discriminator is fine-tuned (the paper also
freezes its first layers, FreezeD-style: ``d_frozen`` patterns). BatchNorm layers of a DCGAN stay in training
mode (as the source was trained), so their running statistics move; the delta records them.

Recipe (``fsgen_hub.methods.recipes``; github.com/MiaoyunZhao/GANTransferLimitedData ``configs/Flowers.yaml``
and ``Flower_[h]our.py``): batch 16, R1 γ 10 on every step, generator average 0.999 (half-life 692.8
steps), no augmentation, D's first layers frozen (``D_Layer_FIX = 2``; here fromRGB via
``d_groups=blocks,final``). Its Adam lr 1e-4 is for a GP-GAN without equalized learning rates and is not
transferred: the architecture's stays. (The official code also unfreezes γ/β only after 10,000 steps.)
"""
from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field

import torch
from torch import nn

from fsgen_hub.methods.base import AdaptContext, MethodConfig, register_method
from fsgen_hub.methods.delta import AdapterParametrization, register
from fsgen_hub.methods.modulation import ModulationMethod
from fsgen_hub.models.base import FilterLayer
from fsgen_hub.utils.errors import FsgenError


@dataclass
class AdaFMConfig(MethodConfig):
    layers: list[str] | None = field(
        default=None,
        metadata={"help": "fnmatch patterns of generator filter layers to modulate (G.filter_layers() names); "
                          "default: every layer at min_resolution and above"})
    min_resolution: int = field(
        default=8, metadata={"help": "when layers is unset: modulate layers at this resolution and above"})
    train: list[str] | None = field(
        default=None,
        metadata={"help": "fnmatch patterns of generator parameters trained in full; default: the paper's split "
                          "(mapping, input and the unmodulated blocks); [] trains gamma/beta only"})
    d_frozen: list[str] = field(
        default_factory=list,
        metadata={"help": "fnmatch patterns of discriminator parameters to freeze (default none)"})

    def __post_init__(self):
        if self.min_resolution < 4:
            raise FsgenError("min_resolution must be at least 4")


class FilterModulation(AdapterParametrization):
    """W' = γ ⊙ W + β with γ/β (out, in) broadcast over the kernel; identity at γ=1, β=0."""

    def __init__(self, key: str, weight: torch.Tensor, out_dim: int, in_dim: int):
        super().__init__(key)
        out_ch, in_ch = weight.shape[out_dim], weight.shape[in_dim]
        self.gamma = nn.Parameter(torch.ones(out_ch, in_ch, device=weight.device, dtype=weight.dtype))
        self.beta = nn.Parameter(torch.zeros(out_ch, in_ch, device=weight.device, dtype=weight.dtype))
        self.out_dim, self.in_dim, self.ndim = out_dim, in_dim, weight.ndim

    def _view(self, matrix: torch.Tensor) -> torch.Tensor:
        # (out, in) → a broadcastable tensor with out/in on the weight's axes (transposed when in comes first)
        first, second = sorted((self.out_dim, self.in_dim))
        matrix = matrix if self.out_dim < self.in_dim else matrix.t()
        shape = [1] * self.ndim
        shape[first], shape[second] = matrix.shape
        return matrix.reshape(shape)

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return weight * self._view(self.gamma) + self._view(self.beta)


class AdaFM(ModulationMethod):
    description = "AdaFM: freeze low-level conv kernels and learn a per-kernel scale and shift (gamma*W+beta)"
    paper = "Zhao, Cong & Carin, ICML 2020 (arXiv:2002.11810)"

    # --- layer choice ---------------------------------------------------------------------
    def modulated_layers(self, G) -> list[FilterLayer]:
        all_layers = G.filter_layers()
        if self.config.layers is not None:
            layers = G.select_filter_layers(self.config.layers) if self.config.layers else []
        else:
            layers = [layer for layer in all_layers if layer.resolution >= self.config.min_resolution]
        if not layers:
            wanted = self.config.layers if self.config.layers is not None else f">= {self.config.min_resolution} px"
            raise FsgenError(f"AdaFM: no generator filter layer matches {wanted}; "
                             f"available: {', '.join(layer.name for layer in all_layers)}")
        return layers

    def default_train_patterns(self, G, modulated: list[FilterLayer]) -> list[str]:
        names = {layer.name for layer in modulated}
        # what comes before the first filter layer (mapping network, learned constant) trains with the
        # high-level blocks by default
        groups = G.parameter_groups()
        patterns = [*groups["mapping"], *groups["const"]]
        for layer in G.filter_layers():
            if layer.name in names:
                continue
            patterns.append(f"{layer.name}.*")
            patterns += [name for name, _ in layer.coupled]
            # the RGB output convs reading an unmodulated block belong to it (StyleGAN2 to_rgb1)
            patterns += [f"{name.split('.conv.')[0]}.*" for name, _ in layer.consumers
                         if "rgb" in name and ".conv." in name]
        return patterns

    # --- set-up -------------------------------------------------------------------------
    def attach(self, generator: nn.Module) -> None:
        for layer in self.modulated_layers(generator):
            module = _weight_owner(layer)
            register(module, "weight", FilterModulation(layer.name, layer.weight, layer.out_dim, layer.in_dim))
            module.parametrizations["weight"].original.requires_grad_(False)  # gradients never reach W

    def prepare(self, ctx: AdaptContext) -> None:
        self.snapshot_base(ctx)
        G = ctx.unwrap(ctx.G)
        modulated = self.modulated_layers(G)
        patterns = self.config.train if self.config.train is not None else self.default_train_patterns(G, modulated)
        names = [n for n, _ in G.named_parameters()]
        if self.config.train:
            for pattern in self.config.train:
                if not any(fnmatch.fnmatch(n, pattern) for n in names):
                    raise FsgenError(f"AdaFM: train pattern {pattern!r} matches no generator parameter "
                                     f"(e.g. {', '.join(names[:4])})")
        for name, param in G.named_parameters():
            param.requires_grad_(any(fnmatch.fnmatch(name, p) for p in patterns))
        self.attach(G)
        self.trained = [n for n, p in G.named_parameters() if p.requires_grad and ".parametrizations." not in n]
        self.modulated = [layer.name for layer in modulated]
        if ctx.D is not None and self.config.d_frozen:
            D = ctx.unwrap(ctx.D)
            d_names = [n for n, _ in D.named_parameters()]
            for pattern in self.config.d_frozen:
                if not any(fnmatch.fnmatch(n, pattern) for n in d_names):
                    raise FsgenError(f"AdaFM: d_frozen pattern {pattern!r} matches no discriminator parameter "
                                     f"(e.g. {', '.join(d_names[:4])})")
            for name, param in D.named_parameters():
                if any(fnmatch.fnmatch(name, p) for p in self.config.d_frozen):
                    param.requires_grad_(False)
        self.model = G  # the parametrized training generator (tests and tools inspect it)


def _weight_owner(layer: FilterLayer) -> nn.Module:
    """The submodule whose ``weight`` parameter is the layer's kernel (DCGAN: the conv itself; StyleGAN2: ``.conv``)."""
    for module in layer.module.modules():
        if module._parameters.get("weight") is layer.weight:
            return module
    raise FsgenError(f"AdaFM: the kernel of {layer.name} is already parametrized by another method; apply AdaFM alone")


register_method("adafm", AdaFMConfig, AdaFM)
