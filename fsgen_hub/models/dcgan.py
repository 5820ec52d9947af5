"""DCGAN generator and discriminator in the PyTorch DCGAN-tutorial layout (``main.{i}`` indices).

Any power-of-two resolution >= 16: the tutorial's 64 px stack has 4 up-sampling blocks after the
4x4 projection; each doubling of resolution adds one block. Widths: ``ngf * 2**k`` (capped
table given by ``channels`` when set, e.g. after slimming).
"""
from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass, field

import torch
from torch import nn

from fsgen_hub.models.base import BaseDiscriminator, BaseGenerator, FilterLayer, FisherUnit
from fsgen_hub.models.modeling_utils import MAX_LATENT, MAX_WIDTH, ModelConfig, check_int, check_parameter_budget, register_model
from fsgen_hub.utils.errors import CheckpointError


def _check_resolution(resolution: int) -> int:
    if resolution < 16 or resolution & (resolution - 1):
        raise CheckpointError(f"resolution must be a power of two >= 16, got {resolution}")
    return int(math.log2(resolution)) - 2  # number of stride-2 blocks after the 4x4 stage


@dataclass
class DCGANConfig(ModelConfig):
    resolution: int = field(default=64, metadata={"help": "output size in pixels (power of two >= 16)"})
    nz: int = field(default=100, metadata={"help": "latent size"})
    ngf: int = field(default=64, metadata={"help": "generator width of the last hidden layer"})
    ndf: int = field(default=64, metadata={"help": "discriminator width of the first layer"})
    nc: int = field(default=3, metadata={"help": "image channels"})
    channels: list[int] | None = field(
        default=None,
        metadata={"help": "explicit hidden widths from the 4x4 layer up (slimmed models); default ngf*2**k"},
    )

    def __post_init__(self):
        # every field is checked before any tensor is built from it (types, NaN, fractional and huge sizes)
        name = "DCGANConfig"
        check_int(name, "resolution", self.resolution, 0, 1 << 30)
        n = _check_resolution(self.resolution)
        if self.resolution > 1024:
            raise CheckpointError(f"DCGAN resolution must be at most 1024, got {self.resolution}")
        check_int(name, "nz", self.nz, 1, MAX_LATENT)
        check_int(name, "ngf", self.ngf, 1, MAX_WIDTH)
        check_int(name, "ndf", self.ndf, 1, MAX_WIDTH)
        check_int(name, "nc", self.nc, 1, 4)
        if self.channels is not None:
            if not isinstance(self.channels, list) or len(self.channels) != n:
                raise CheckpointError(f"{name}.channels needs a list of {n} widths for resolution {self.resolution}, "
                                      f"got {self.channels!r}")
            for value in self.channels:
                check_int(name, "channels", value, 1, MAX_WIDTH)
        widths = self.generator_widths()
        if max(widths) > MAX_WIDTH:
            raise CheckpointError(f"{name}: ngf {self.ngf} at {self.resolution} px gives {max(widths)} channels, "
                                  f"more than {MAX_WIDTH}: fix config.json")
        generator = sum(16 * a * b for a, b in zip([self.nz, *widths], [*widths, self.nc]))
        discriminator = sum(16 * a * b for a, b in zip([self.nc, *[self.ndf * 2**i for i in range(n)]],
                                                       [self.ndf * 2**i for i in range(n + 1)]))
        check_parameter_budget("this DCGAN config", generator + discriminator)

    def generator_widths(self) -> list[int]:
        n = _check_resolution(self.resolution)
        return list(self.channels) if self.channels else [self.ngf * 2 ** (n - 1 - i) for i in range(n)]


class DCGANGenerator(BaseGenerator):
    """ConvTranspose2d/BatchNorm2d/ReLU stack with a Tanh output, as in the PyTorch tutorial."""

    architecture = "dcgan"
    config_class = DCGANConfig
    filter_widths_field = "channels"
    optimizer_defaults = {"lr_g": 2e-4, "lr_d": 2e-4, "beta1": 0.5, "beta2": 0.999}  # Radford et al.

    def __init__(self, config: DCGANConfig | None = None):
        super().__init__()
        self.config = config = config or DCGANConfig()
        widths = config.generator_widths()
        layers: list[nn.Module] = []
        in_ch = config.nz
        for i, out_ch in enumerate(widths):
            stride, pad = (1, 0) if i == 0 else (2, 1)
            layers += [nn.ConvTranspose2d(in_ch, out_ch, 4, stride, pad, bias=False), nn.BatchNorm2d(out_ch), nn.ReLU(True)]
            in_ch = out_ch
        layers += [nn.ConvTranspose2d(in_ch, config.nc, 4, 2, 1, bias=False), nn.Tanh()]
        self.main = nn.Sequential(*layers)

    @property
    def z_dim(self) -> int:
        return self.config.nz

    @property
    def resolution(self) -> int:
        return self.config.resolution

    def forward(self, z, truncation: float = 1.0, noise_mode: str = "random", return_features: bool = False):
        # DCGAN has no mapping network: truncation scales z towards the mean of its prior (0).
        x = (z * truncation).reshape(z.shape[0], -1, 1, 1) if z.dim() == 2 else z * truncation
        features: OrderedDict[str, torch.Tensor] = OrderedDict()
        for idx, layer in enumerate(self.main):
            x = layer(x)
            if return_features and isinstance(layer, nn.ReLU):
                features[f"main.{idx}"] = x
        return (x, features) if return_features else x

    def filter_layers(self) -> list[FilterLayer]:
        layers = []
        modules = list(self.main)
        res = 4
        for idx, m in enumerate(modules[:-2]):  # the RGB output layer has no filters to prune
            if isinstance(m, nn.ConvTranspose2d):
                coupled = []
                if idx + 1 < len(modules) and isinstance(modules[idx + 1], nn.BatchNorm2d):
                    bn = f"main.{idx + 1}"
                    coupled = [(f"{bn}.weight", 0), (f"{bn}.bias", 0), (f"{bn}.running_mean", 0), (f"{bn}.running_var", 0)]
                nxt = next(j for j in range(idx + 1, len(modules)) if isinstance(modules[j], nn.ConvTranspose2d))
                # ConvTranspose2d weight is (in, out, k, k): output filters on axis 1, inputs on axis 0
                layers.append(FilterLayer(f"main.{idx}", m, m.weight, out_dim=1, in_dim=0, resolution=res, coupled=coupled,
                                          consumers=[(f"main.{nxt}.weight", 0)]))
                res *= 2
        return layers

    def parameter_groups(self) -> dict[str, list[str]]:
        # no mapping network nor learned constant: the 4x4 projection (with its BN) plays conv1's role
        convs = [i for i, m in enumerate(self.main) if isinstance(m, nn.ConvTranspose2d)]
        last = convs[-1]
        groups: dict[str, list[str]] = {"mapping": [], "const": [], "conv1": [], "synthesis": [], "torgb": []}
        for name, _ in self.named_parameters():
            index = int(name.split(".")[1])
            key = "conv1" if index < convs[1] else "torgb" if index >= last else "synthesis"
            groups[key].append(name)
        return groups

    def fisher_units(self) -> list[FisherUnit]:
        # as RICK on StyleGAN2: the hidden convs after the first, per output channel, with their BN affine
        units = []
        for layer in self.filter_layers()[1:]:
            affine = [(n, a) for n, a in layer.coupled if not n.endswith(("running_mean", "running_var"))]
            units.append(FisherUnit(f"{layer.name}.weight", "conv", [(f"{layer.name}.weight", 1), *affine]))
        return units


class DCGANDiscriminator(BaseDiscriminator):
    """Conv2d/BatchNorm2d/LeakyReLU stack; returns logits (the tutorial's final Sigmoid is dropped)."""

    architecture = "dcgan"
    config_class = DCGANConfig

    def __init__(self, config: DCGANConfig | None = None):
        super().__init__()
        self.config = config = config or DCGANConfig()
        n = _check_resolution(config.resolution)
        widths = [config.ndf * 2**i for i in range(n)]
        layers: list[nn.Module] = []
        in_ch = config.nc
        for i, out_ch in enumerate(widths):
            layers.append(nn.Conv2d(in_ch, out_ch, 4, 2, 1, bias=False))
            if i > 0:
                layers.append(nn.BatchNorm2d(out_ch))
            layers.append(nn.LeakyReLU(0.2, inplace=True))
            in_ch = out_ch
        layers.append(nn.Conv2d(in_ch, 1, 4, 1, 0, bias=False))
        self.main = nn.Sequential(*layers)

    @property
    def resolution(self) -> int:
        return self.config.resolution

    def blocks(self) -> list[list[tuple[str, nn.Parameter]]]:
        blocks: list[list[tuple[str, nn.Parameter]]] = []
        for idx, layer in enumerate(self.main):
            if isinstance(layer, nn.Conv2d):
                blocks.append([])
            blocks[-1] += [(f"main.{idx}.{name}", p) for name, p in layer.named_parameters()]
        return blocks

    def fisher_units(self) -> list[FisherUnit]:
        # the hidden convs after the first (fromRGB) and before the logit conv, with their BN affine
        modules = list(self.main)
        convs = [i for i, m in enumerate(modules) if isinstance(m, nn.Conv2d)]
        units = []
        for i in convs[1:-1]:
            entries = [(f"main.{i}.weight", 0)]
            if isinstance(modules[i + 1], nn.BatchNorm2d):
                entries += [(f"main.{i + 1}.weight", 0), (f"main.{i + 1}.bias", 0)]
            units.append(FisherUnit(f"main.{i}", "conv", entries))
        return units

    def forward(self, images, return_features: bool | str = False):
        x = images
        features: OrderedDict[str, torch.Tensor] = OrderedDict()
        for idx, layer in enumerate(self.main):
            x = layer(x)
            if return_features and isinstance(layer, nn.LeakyReLU):
                features[f"main.{idx}"] = x
        logits = x.reshape(x.shape[0], 1)
        return (logits, features) if return_features else logits


register_model(DCGANGenerator)
register_model(DCGANDiscriminator)
