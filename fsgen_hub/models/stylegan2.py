"""StyleGAN2 (Karras et al., CVPR 2020) generator and discriminator in pure PyTorch.

Parameter and buffer names follow rosinality/stylegan2-pytorch (``style.N``, ``input.input``,
``conv1``, ``to_rgb1``, ``convs.N``, ``to_rgbs.N``, ``noises.noise_N``; D: ``convs``, ``final_conv``,
``final_linear``), the de-facto checkpoint format of few-shot GAN research (CDC, RICK, AdAM), so
converting those checkpoints is a regrouping of keys. The architecture is the "skip" generator and
"resnet" discriminator of the paper (config F), with the usual [1,3,3,1] FIR filter.
"""
from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from fsgen_hub.models.base import BaseDiscriminator, BaseGenerator, FilterLayer, FisherUnit, named_groups
from fsgen_hub.models.modeling_utils import (
    MAX_LATENT,
    MAX_MAPPING_LAYERS,
    MAX_WIDTH,
    ModelConfig,
    check_float,
    check_int,
    check_parameter_budget,
    register_model,
)
from fsgen_hub.models.ops import (
    Blur,
    EqualConv2d,
    EqualLinear,
    FusedLeakyReLU,
    PixelNorm,
    Upsample,
)
from fsgen_hub.utils.errors import CheckpointError


def default_channels(channel_multiplier: int = 2, max_channels: int = 512) -> dict[str, int]:
    """rosinality's table: 512 up to 32 px, then 256*cm, 128*cm, ... (capped by ``max_channels``)."""
    table = {4: 512, 8: 512, 16: 512, 32: 512, 64: 256 * channel_multiplier, 128: 128 * channel_multiplier,
             256: 64 * channel_multiplier, 512: 32 * channel_multiplier, 1024: 16 * channel_multiplier}
    return {str(k): min(v, max_channels) for k, v in table.items()}


@dataclass
class StyleGAN2Config(ModelConfig):
    resolution: int = field(default=256, metadata={"help": "output size, a power of two from 16 to 1024"})
    style_dim: int = field(default=512, metadata={"help": "size of z and w"})
    n_mlp: int = field(default=8, metadata={"help": "layers of the mapping network"})
    channel_multiplier: int = field(default=2, metadata={"help": "width multiplier above 32 px (rosinality)"})
    lr_mlp: float = field(default=0.01, metadata={"help": "learning-rate multiplier of the mapping network"})
    blur_kernel: list[int] = field(default_factory=lambda: [1, 3, 3, 1], metadata={"help": "FIR resampling taps"})
    channels: dict[str, int] | None = field(
        default=None, metadata={"help": "width per resolution {'4': 512, ...}; default: rosinality's table"}
    )
    conv_channels: list[int] | None = field(
        default=None,
        metadata={"help": "output width of every modulated conv (conv1, convs.0, ...): slimmed (pruned) generators"},
    )

    def __post_init__(self):
        # every field is checked before any tensor is built from it (types, NaN, fractional and huge sizes)
        name = "StyleGAN2Config"
        check_int(name, "resolution", self.resolution, 0, 1 << 30)
        if self.resolution < 16 or self.resolution > 1024 or self.resolution & (self.resolution - 1):
            raise CheckpointError(f"StyleGAN2 resolution must be a power of two from 16 to 1024, got {self.resolution}")
        check_int(name, "style_dim", self.style_dim, 1, MAX_LATENT)
        check_int(name, "n_mlp", self.n_mlp, 1, MAX_MAPPING_LAYERS)
        check_int(name, "channel_multiplier", self.channel_multiplier, 1, 64)
        check_float(name, "lr_mlp", self.lr_mlp, 1e-8, 1e3)
        if not isinstance(self.blur_kernel, (list, tuple)) or not 1 <= len(self.blur_kernel) <= 8:
            raise CheckpointError(f"{name}.blur_kernel must be a list of 1 to 8 taps, got {self.blur_kernel!r}")
        for tap in self.blur_kernel:
            check_float(name, "blur_kernel", tap, -1e3, 1e3)
        if self.channels is None:
            self.channels = default_channels(self.channel_multiplier)
        if not isinstance(self.channels, dict):
            raise CheckpointError(f"{name}.channels must map resolutions to widths, got {self.channels!r}")
        for key, value in self.channels.items():
            check_int(name, f"channels[{key}]", value, 1, MAX_WIDTH)
        self.channels = {str(k): v for k, v in self.channels.items()}
        missing = [r for r in self.resolutions if str(r) not in self.channels]
        if missing:
            raise CheckpointError(f"StyleGAN2 channels table lacks resolutions {missing}")
        if self.conv_channels is not None:
            if not isinstance(self.conv_channels, list) or len(self.conv_channels) != self.num_convs:
                raise CheckpointError(f"conv_channels needs a list of {self.num_convs} widths, got {self.conv_channels!r}")
            for value in self.conv_channels:
                check_int(name, "conv_channels", value, 1, MAX_WIDTH)
        check_parameter_budget("this StyleGAN2 config", self.approximate_parameters())

    def approximate_parameters(self) -> int:
        """Generator + a discriminator of the same widths (within a few percent): the size check before building."""
        mapping = self.n_mlp * self.style_dim * self.style_dim
        widths = self.generator_conv_widths()
        convs = sum(9 * a * b + self.style_dim * a for a, b in zip([widths[0], *widths[:-1]], widths))
        discriminator = sum(18 * self.width(r) ** 2 for r in self.resolutions)
        return mapping + convs + discriminator

    @property
    def log_size(self) -> int:
        return int(math.log2(self.resolution))

    @property
    def resolutions(self) -> list[int]:
        return [2**i for i in range(2, self.log_size + 1)]

    @property
    def num_convs(self) -> int:
        return 1 + 2 * (self.log_size - 2)

    @property
    def n_latent(self) -> int:
        return self.log_size * 2 - 2

    def width(self, res: int) -> int:
        return self.channels[str(res)]

    def generator_conv_widths(self) -> list[int]:
        if self.conv_channels is not None:
            return list(self.conv_channels)
        widths = [self.width(4)]
        for res in self.resolutions[1:]:
            widths += [self.width(res), self.width(res)]
        return widths


MODCONV_IMPLEMENTATIONS = ("auto", "grouped", "shared")


class ModulatedConv2d(nn.Module):
    """Weight modulated by a per-sample style (one scale per input channel), optionally demodulated.

    Two exact implementations (equal up to float rounding, forward and gradients):

    - ``"grouped"``: every sample gets its own modulated kernel, one grouped convolution over the batch
      (rosinality; NVlabs' ``fused_modconv=True``);
    - ``"shared"``: the styles scale the input activations, one dense convolution with the shared kernel,
      the demodulation coefficients scale the outputs (NVlabs' ``fused_modconv=False``). Dense convolutions
      and their backward are much better optimised than grouped ones, and the kernel gradient is one
      reduction instead of a per-sample kernel stack.

    ``implementation = "auto"`` (default) picks per call what measured fastest (``scripts/bench_train_step.py``).
    """

    implementation = "auto"

    def __init__(self, in_ch, out_ch, kernel_size, style_dim, demodulate=True, upsample=False, blur_kernel=(1, 3, 3, 1)):
        super().__init__()
        self.in_channel, self.out_channel, self.kernel_size = in_ch, out_ch, kernel_size
        self.upsample, self.demodulate = upsample, demodulate
        if upsample:
            factor = 2
            p = (len(blur_kernel) - factor) - (kernel_size - 1)
            self.blur = Blur(blur_kernel, pad=((p + 1) // 2 + factor - 1, p // 2 + 1), upsample_factor=factor)
        self.scale = 1 / math.sqrt(in_ch * kernel_size**2)
        self.padding = kernel_size // 2
        self.weight = nn.Parameter(torch.randn(1, out_ch, in_ch, kernel_size, kernel_size))
        self.modulation = EqualLinear(style_dim, in_ch, bias_init=1)

    def resolved_implementation(self, x: torch.Tensor) -> str:
        if self.implementation != "auto":
            return self.implementation
        return choose_modconv(x, self)

    def forward(self, x, style):
        style = self.modulation(style)
        if self.resolved_implementation(x) == "shared":
            return self._forward_shared(x, style)
        return self._forward_grouped(x, style)

    def _forward_grouped(self, x, style):
        batch, in_ch, h, w = x.shape
        style = style.view(batch, 1, in_ch, 1, 1)
        weight = self.scale * self.weight * style
        if self.demodulate:
            demod = torch.rsqrt(weight.pow(2).sum([2, 3, 4]) + 1e-8)
            weight = weight * demod.view(batch, self.out_channel, 1, 1, 1)
        x = x.reshape(1, batch * in_ch, h, w)
        if self.upsample:
            weight = weight.transpose(1, 2).reshape(batch * in_ch, self.out_channel, self.kernel_size, self.kernel_size)
            out = F.conv_transpose2d(x, weight, padding=0, stride=2, groups=batch)
            out = self.blur(out.view(batch, self.out_channel, *out.shape[2:]))
        else:
            weight = weight.reshape(batch * self.out_channel, in_ch, self.kernel_size, self.kernel_size)
            out = F.conv2d(x, weight, padding=self.padding, groups=batch)
            out = out.view(batch, self.out_channel, *out.shape[2:])
        return out

    def _forward_shared(self, x, style):
        batch, in_ch = x.shape[:2]
        weight = self.scale * self.weight[0]  # (out, in, k, k), the same for every sample
        x = x * style.view(batch, in_ch, 1, 1)
        if self.upsample:
            out = self.blur(F.conv_transpose2d(x, weight.transpose(0, 1), stride=2))
        else:
            out = F.conv2d(x, weight, padding=self.padding)
        if self.demodulate:
            # sum over (in, k, k) of (style_i * w_oikk)^2 = style^2 @ (sum_kk w^2)^T
            demod = torch.rsqrt(style.square() @ weight.square().sum([2, 3]).t() + 1e-8)
            out = out * demod.view(batch, self.out_channel, 1, 1)
        return out


def choose_modconv(x: torch.Tensor, conv: ModulatedConv2d) -> str:
    """The faster exact implementation for this call (measured per layer on CPU, see README "Benchmarks").

    Shared-kernel for the 3x3 convolutions of a batch: one dense convolution (and its much cheaper
    backward) beats a grouped one, most at low resolution and many channels. The 1x1 toRGB stays
    grouped: its convolution is tiny, so scaling the whole activation map costs more than it saves;
    a single sample is one dense convolution either way.
    """
    return "shared" if conv.kernel_size > 1 and x.shape[0] > 1 else "grouped"


def set_modconv_implementation(model: nn.Module, implementation: str) -> None:
    """Use ``implementation`` ("auto", "grouped" or "shared") in every modulated conv of ``model``."""
    if implementation not in MODCONV_IMPLEMENTATIONS:
        raise ValueError(f"modulated conv implementation must be one of {MODCONV_IMPLEMENTATIONS}, not {implementation!r}")
    for module in model.modules():
        if isinstance(module, ModulatedConv2d):
            module.implementation = implementation


class NoiseInjection(nn.Module):
    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))

    def forward(self, x, noise=None):
        if noise is None:
            noise = x.new_empty(x.shape[0], 1, x.shape[2], x.shape[3]).normal_()
        return x + self.weight * noise


class ConstantInput(nn.Module):
    def __init__(self, channels: int, size: int = 4):
        super().__init__()
        self.input = nn.Parameter(torch.randn(1, channels, size, size))

    def forward(self, batch: int):
        return self.input.repeat(batch, 1, 1, 1)


class StyledConv(nn.Module):
    def __init__(self, in_ch, out_ch, kernel_size, style_dim, upsample=False, blur_kernel=(1, 3, 3, 1)):
        super().__init__()
        self.conv = ModulatedConv2d(in_ch, out_ch, kernel_size, style_dim, upsample=upsample, blur_kernel=blur_kernel)
        self.noise = NoiseInjection()
        self.activate = FusedLeakyReLU(out_ch)

    def forward(self, x, style, noise=None):
        return self.activate(self.noise(self.conv(x, style), noise=noise))


class ToRGB(nn.Module):
    def __init__(self, in_ch, style_dim, upsample=True, blur_kernel=(1, 3, 3, 1)):
        super().__init__()
        if upsample:
            self.upsample = Upsample(blur_kernel)
        self.conv = ModulatedConv2d(in_ch, 3, 1, style_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(1, 3, 1, 1))

    def forward(self, x, style, skip=None):
        out = self.conv(x, style) + self.bias
        if skip is not None:
            out = out + self.upsample(skip)
        return out


class StyleGAN2Generator(BaseGenerator):
    architecture = "stylegan2"
    config_class = StyleGAN2Config
    has_style_space = True
    latent_spaces = ("z", "w", "w+")
    filter_widths_field = "conv_channels"

    def __init__(self, config: StyleGAN2Config | None = None):
        super().__init__()
        self.config = config = config or StyleGAN2Config()
        style_dim, blur = config.style_dim, config.blur_kernel
        self.style = nn.Sequential(
            PixelNorm(),
            *[EqualLinear(style_dim, style_dim, lr_mul=config.lr_mlp, activation="fused_lrelu") for _ in range(config.n_mlp)],
        )
        widths = config.generator_conv_widths()
        self.input = ConstantInput(config.width(4))
        self.conv1 = StyledConv(config.width(4), widths[0], 3, style_dim, blur_kernel=blur)
        self.to_rgb1 = ToRGB(widths[0], style_dim, upsample=False)
        self.convs, self.to_rgbs = nn.ModuleList(), nn.ModuleList()
        self.noises = nn.Module()
        for layer_idx in range(config.num_convs):
            res = 2 ** ((layer_idx + 5) // 2)
            self.noises.register_buffer(f"noise_{layer_idx}", torch.randn(1, 1, res, res))
        in_ch = widths[0]
        for k in range(config.log_size - 2):
            mid, out = widths[1 + 2 * k], widths[2 + 2 * k]
            self.convs.append(StyledConv(in_ch, mid, 3, style_dim, upsample=True, blur_kernel=blur))
            self.convs.append(StyledConv(mid, out, 3, style_dim, blur_kernel=blur))
            self.to_rgbs.append(ToRGB(out, style_dim, blur_kernel=blur))
            in_ch = out
        self.register_buffer("latent_avg", torch.zeros(style_dim))

    # ------------------------------------------------------------------ properties
    @property
    def z_dim(self) -> int:
        return self.config.style_dim

    @property
    def resolution(self) -> int:
        return self.config.resolution

    @property
    def n_latent(self) -> int:
        return self.config.n_latent

    @property
    def num_layers(self) -> int:
        return self.config.num_convs

    # ------------------------------------------------------------------ latents
    def mapping(self, z: torch.Tensor) -> torch.Tensor:
        return self.style(z)

    @torch.no_grad()
    def mean_latent(self, n: int = 4096, seed: int = 0, update: bool = True) -> torch.Tensor:
        """Estimate the mean w from ``n`` samples (stored in ``latent_avg`` when ``update``)."""
        z = torch.randn(n, self.z_dim, generator=torch.Generator().manual_seed(seed)).to(self.latent_avg.device)
        mean = self.mapping(z).mean(0)
        if update:
            self.latent_avg.copy_(mean)
        return mean

    def synthesize(self, latents: torch.Tensor, space: str = "z", noise_mode: str = "const") -> torch.Tensor:
        return self(latents, input_space=space, noise_mode=noise_mode)

    @torch.no_grad()
    def latent_start(self, n: int, space: str) -> torch.Tensor | None:
        """The mean w (StyleGAN2's usual start of an inversion), per image, repeated per layer for w+."""
        if space == "z":
            return None
        w_avg = self.latent_avg if bool(self.latent_avg.abs().sum() > 0) else self.mean_latent(1024, update=False)
        w = w_avg.detach().to(self.device).expand(n, -1)
        return w.unsqueeze(1).repeat(1, self.n_latent, 1) if space == "w+" else w.clone()

    def _noise_list(self, noise_mode: str, noise):
        if noise is not None:
            return list(noise)
        if noise_mode == "random":
            return [None] * self.num_layers
        if noise_mode == "const":
            return [getattr(self.noises, f"noise_{i}") for i in range(self.num_layers)]
        if noise_mode == "none":
            return [torch.zeros_like(getattr(self.noises, f"noise_{i}")) for i in range(self.num_layers)]
        raise ValueError(f"noise_mode must be 'random', 'const' or 'none', not {noise_mode!r}")

    def forward(
        self,
        z,
        truncation: float = 1.0,
        noise_mode: str = "random",
        return_features: bool = False,
        input_space: str = "z",
        mix_z: torch.Tensor | None = None,
        mix_index: int | None = None,
        noise=None,
    ):
        """``z`` is a latent in ``input_space`` "z" (N, D), "w" (N, D) or "w+" (N, n_latent, D).

        ``mix_z`` (same space) takes over from layer ``mix_index`` (style mixing); ``truncation`` pulls
        w towards ``latent_avg``; ``noise`` overrides the per-layer noise maps.
        """
        ws = self.styles(z, truncation=truncation, input_space=input_space, mix_z=mix_z, mix_index=mix_index)
        return self.synthesis(ws, noise=self._noise_list(noise_mode, noise), return_features=return_features)

    def styles(self, z, truncation: float = 1.0, input_space: str = "z", mix_z=None, mix_index: int | None = None):
        """The per-layer styles w+ (N, n_latent, D) that ``forward`` feeds the synthesis network."""
        styles = [z] if mix_z is None else [z, mix_z]
        if input_space == "z":
            styles = [self.mapping(s) for s in styles]
        elif input_space not in ("w", "w+"):
            raise ValueError(f"input_space must be 'z', 'w' or 'w+', not {input_space!r}")
        if truncation != 1:
            styles = [self.latent_avg + truncation * (s - self.latent_avg) for s in styles]
        ws = [s if s.ndim == 3 else s.unsqueeze(1).repeat(1, self.n_latent, 1) for s in styles]
        if len(ws) == 2:
            index = self.n_latent // 2 if mix_index is None else mix_index
            return torch.cat([ws[0][:, :index], ws[1][:, index:]], 1)
        return ws[0]

    def synthesis(self, ws: torch.Tensor, noise, return_features: bool = False):
        features: OrderedDict[str, torch.Tensor] = OrderedDict()
        out = self.input(ws.shape[0])
        out = self.conv1(out, ws[:, 0], noise=noise[0])
        features["conv1"] = out  # every StyledConv's output (after noise and activation), as CDC reads them
        skip = self.to_rgb1(out, ws[:, 1])
        i = 1
        for k, (noise1, noise2, to_rgb) in enumerate(zip(noise[1::2], noise[2::2], self.to_rgbs)):
            out = self.convs[2 * k](out, ws[:, i], noise=noise1)
            features[f"convs.{2 * k}"] = out
            out = self.convs[2 * k + 1](out, ws[:, i + 1], noise=noise2)
            features[f"convs.{2 * k + 1}"] = out
            skip = to_rgb(out, ws[:, i + 2], skip)
            i += 2
        return (skip, features) if return_features else skip

    def filter_layers(self) -> list[FilterLayer]:
        names = ["conv1"] + [f"convs.{i}" for i in range(len(self.convs))]
        modules = [self.conv1, *self.convs]
        layers = []
        for idx, (name, styled) in enumerate(zip(names, modules)):
            readers = [names[idx + 1]] if idx + 1 < len(names) else []
            if idx % 2 == 0:  # conv1 and every second conv of a block feed a toRGB
                readers.append("to_rgb1" if idx == 0 else f"to_rgbs.{idx // 2 - 1}")
            consumers = []
            for reader in readers:
                consumers += [(f"{reader}.conv.weight", 2), (f"{reader}.conv.modulation.weight", 0),
                              (f"{reader}.conv.modulation.bias", 0)]
            res = 4 if idx == 0 else 2 ** (3 + (idx - 1) // 2)
            layers.append(FilterLayer(name, styled, styled.conv.weight, out_dim=1, in_dim=2, resolution=res,
                                      coupled=[(f"{name}.activate.bias", 0)], modulation=styled.conv.modulation,
                                      consumers=consumers))
        return layers

    def parameter_groups(self) -> dict[str, list[str]]:
        return named_groups(self, {"mapping": ["style.*"], "const": ["input.*"], "conv1": ["conv1.*"],
                                   "torgb": ["to_rgb1.*", "to_rgbs.*"], "synthesis": ["convs.*"]})

    def fisher_units(self) -> list[FisherUnit]:
        # RICK scores the modulated kernels per output channel and, separately, the style affines per
        # input channel (rows of modulation.weight/bias); conv1 (4x4) and the toRGBs are not scored
        convs = [FisherUnit(f"convs.{k}.conv.weight", "conv", [(f"convs.{k}.conv.weight", 1)]) for k in range(len(self.convs))]
        mods = [FisherUnit(f"convs.{k}.conv.modulation", "modulation",
                           [(f"convs.{k}.conv.modulation.weight", 0), (f"convs.{k}.conv.modulation.bias", 0)])
                for k in range(len(self.convs))]
        return convs + mods


class ConvLayer(nn.Sequential):
    """[Blur] + EqualConv2d + [FusedLeakyReLU], keys as rosinality's ConvLayer."""

    def __init__(self, in_ch, out_ch, kernel_size, downsample=False, blur_kernel=(1, 3, 3, 1), bias=True, activate=True):
        layers = []
        if downsample:
            p = (len(blur_kernel) - 2) + (kernel_size - 1)
            layers.append(Blur(blur_kernel, pad=((p + 1) // 2, p // 2)))
            stride, padding = 2, 0
        else:
            stride, padding = 1, kernel_size // 2
        layers.append(EqualConv2d(in_ch, out_ch, kernel_size, padding=padding, stride=stride, bias=bias and not activate))
        if activate:
            layers.append(FusedLeakyReLU(out_ch))
        super().__init__(*layers)


class ResBlock(nn.Module):
    def __init__(self, in_ch, out_ch, blur_kernel=(1, 3, 3, 1)):
        super().__init__()
        self.conv1 = ConvLayer(in_ch, in_ch, 3, blur_kernel=blur_kernel)
        self.conv2 = ConvLayer(in_ch, out_ch, 3, downsample=True, blur_kernel=blur_kernel)
        self.skip = ConvLayer(in_ch, out_ch, 1, downsample=True, blur_kernel=blur_kernel, activate=False, bias=False)

    def forward(self, x):
        return (self.conv2(self.conv1(x)) + self.skip(x)) / math.sqrt(2)


class StyleGAN2Discriminator(BaseDiscriminator):
    architecture = "stylegan2"
    config_class = StyleGAN2Config
    stddev_group, stddev_feat = 4, 1
    final_blocks = 2  # final_conv, final_linear
    # channels-last activations on CPU: oneDNN convolves NHWC without reordering every activation to its
    # blocked layout and back (measured ~15% off a faces64 training step); elsewhere left as it comes
    channels_last = "auto"

    def __init__(self, config: StyleGAN2Config | None = None):
        super().__init__()
        self.config = config = config or StyleGAN2Config()
        convs = [ConvLayer(3, config.width(config.resolution), 1)]
        in_ch = config.width(config.resolution)
        for i in range(config.log_size, 2, -1):
            out_ch = config.width(2 ** (i - 1))
            convs.append(ResBlock(in_ch, out_ch, config.blur_kernel))
            in_ch = out_ch
        self.convs = nn.Sequential(*convs)
        self.final_conv = ConvLayer(in_ch + 1, config.width(4), 3)
        self.final_linear = nn.Sequential(
            EqualLinear(config.width(4) * 16, config.width(4), activation="fused_lrelu"), EqualLinear(config.width(4), 1)
        )

    @property
    def resolution(self) -> int:
        return self.config.resolution

    def blocks(self) -> list[list[tuple[str, nn.Parameter]]]:
        blocks = [[(f"convs.{i}.{n}", p) for n, p in block.named_parameters()] for i, block in enumerate(self.convs)]
        blocks.append([(f"final_conv.{n}", p) for n, p in self.final_conv.named_parameters()])
        blocks.append([(f"final_linear.{n}", p) for n, p in self.final_linear.named_parameters()])
        return blocks

    def fisher_units(self) -> list[FisherUnit]:
        # RICK: the ResBlocks' convs (kernel + activation bias) and skips, not fromRGB nor the final layers
        units = []
        for b in range(1, len(self.convs)):
            units.append(FisherUnit(f"convs.{b}.conv1", "conv", [(f"convs.{b}.conv1.0.weight", 0), (f"convs.{b}.conv1.1.bias", 0)]))
            units.append(FisherUnit(f"convs.{b}.conv2", "conv", [(f"convs.{b}.conv2.1.weight", 0), (f"convs.{b}.conv2.2.bias", 0)]))
            units.append(FisherUnit(f"convs.{b}.skip", "conv", [(f"convs.{b}.skip.1.weight", 0)], strict_prune=True))
        return units

    def forward(self, images, return_features: bool | str = False):
        """``return_features="all"`` adds the ResBlocks' inner maps ``convs.N.conv1``/``convs.N.conv2``
        (before the skip sum; CDC's patch-level D reads one) to the block outputs."""
        features: OrderedDict[str, torch.Tensor] = OrderedDict()
        out = images
        if self.channels_last is True or (self.channels_last == "auto" and images.device.type == "cpu"):
            out = images.contiguous(memory_format=torch.channels_last)
        for idx, block in enumerate(self.convs):
            if return_features == "all" and isinstance(block, ResBlock):
                inner = block.conv1(out)
                features[f"convs.{idx}.conv1"] = inner
                features[f"convs.{idx}.conv2"] = block.conv2(inner)
                out = (features[f"convs.{idx}.conv2"] + block.skip(out)) / math.sqrt(2)
            else:
                out = block(out)
            features[f"convs.{idx}"] = out
        batch, channel, height, width = out.shape
        group = min(batch, self.stddev_group)
        if batch % group:
            group = 1  # the minibatch-stddev groups must divide the batch
        stddev = out.view(group, -1, self.stddev_feat, channel // self.stddev_feat, height, width)
        stddev = torch.sqrt(stddev.var(0, unbiased=False) + 1e-8).mean([2, 3, 4], keepdim=True).squeeze(2)
        out = torch.cat([out, stddev.repeat(group, 1, height, width)], 1)
        out = self.final_conv(out)
        features["final_conv"] = out
        logits = self.final_linear(out.reshape(batch, -1))
        return (logits, features) if return_features else logits


register_model(StyleGAN2Generator)
register_model(StyleGAN2Discriminator)
