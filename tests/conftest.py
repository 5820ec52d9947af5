"""Shared fixtures. Keep models tiny (a few thousand parameters, 16-32 px): the suite runs on 2 CPU cores."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
torch.set_num_threads(min(2, torch.get_num_threads()))

SHARED = Path(__file__).resolve().parents[2] / "shared"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """../shared (real data and parity fixtures); tests needing it skip on a fresh clone."""
    if not SHARED.is_dir():
        pytest.skip(f"{SHARED} is absent (it ships with the project's CI, not with a clone)")
    return SHARED


@pytest.fixture
def tiny_dcgan():
    """A 16 px DCGAN generator + discriminator with ~2k parameters each, deterministic weights."""
    from fsgen_hub.models.dcgan import DCGANConfig, DCGANDiscriminator, DCGANGenerator

    torch.manual_seed(0)
    config = DCGANConfig(resolution=16, nz=8, ngf=4, ndf=4)
    return DCGANGenerator(config), DCGANDiscriminator(config)


def save_tiny_dcgan_source(folder: Path) -> Path:
    """A tiny 16 px DCGAN (G + D, seed 0) saved as a hub folder to adapt from; returns ``folder``."""
    from fsgen_hub.models.dcgan import DCGANConfig, DCGANDiscriminator, DCGANGenerator

    torch.manual_seed(0)
    config = DCGANConfig(resolution=16, nz=8, ngf=4, ndf=4)
    DCGANGenerator(config).save_pretrained(folder, discriminator=DCGANDiscriminator(config))
    return folder


def write_random_images(folder: Path, count: int = 4, size: int = 16, seed: int = 3) -> Path:
    """``count`` random RGB PNGs (deterministic for ``seed``) as a tiny target domain; returns ``folder``."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    gen = torch.Generator().manual_seed(seed)
    for i in range(count):
        Image.fromarray((torch.rand(size, size, 3, generator=gen) * 255).byte().numpy()).save(folder / f"{i}.png")
    return folder
