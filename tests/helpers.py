"""Helpers shared by the test files: tiny models, tiny target sets, short training runs, CLI subprocesses.

Import them with ``from helpers import ...`` (pytest puts tests/ on the path, see conftest.py).
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch


# ----------------------------------------------------------------------------- tiny models
def tiny_dcgan_models(resolution: int = 16, nz: int = 8, ngf: int = 4, ndf: int = 4, seed: int = 0):
    """A DCGAN generator + discriminator with ~2k parameters each, deterministic for ``seed``."""
    from fsgen_hub.models.dcgan import DCGANConfig, DCGANDiscriminator, DCGANGenerator

    torch.manual_seed(seed)
    config = DCGANConfig(resolution=resolution, nz=nz, ngf=ngf, ndf=ndf)
    return DCGANGenerator(config), DCGANDiscriminator(config)


def save_tiny_dcgan_source(folder: Path) -> Path:
    """A tiny 16 px DCGAN (G + D, seed 0) saved as a hub folder to adapt from; returns ``folder``."""
    G, D = tiny_dcgan_models()
    G.save_pretrained(folder, discriminator=D)
    return folder


def tiny_stylegan2_config(resolution: int = 16, channels: int | dict = 4, style_dim: int = 8, n_mlp: int = 1, **kw):
    """The one tiny StyleGAN2 config of the suite: ``channels`` is one width for every resolution or a table;
    ``kw`` are further StyleGAN2Config fields (e.g. ``conv_channels``)."""
    from fsgen_hub.models.stylegan2 import StyleGAN2Config

    if isinstance(channels, int):
        channels = {str(2**i): channels for i in range(2, resolution.bit_length())}
    return StyleGAN2Config(resolution=resolution, style_dim=style_dim, n_mlp=n_mlp, channels=channels, **kw)


def tiny_stylegan2_models(seed: int = 0, mean_latent: int = 64, **config_kw):
    """A tiny StyleGAN2 generator (with its truncation mean) + discriminator, deterministic for ``seed``."""
    from fsgen_hub.models.stylegan2 import StyleGAN2Discriminator, StyleGAN2Generator

    torch.manual_seed(seed)
    config = tiny_stylegan2_config(**config_kw)
    G = StyleGAN2Generator(config)
    if mean_latent:
        G.mean_latent(mean_latent)
    return G, StyleGAN2Discriminator(config)


def save_tiny_stylegan2_source(folder: Path, **kw) -> Path:
    G, D = tiny_stylegan2_models(**kw)
    G.save_pretrained(folder, discriminator=D)
    return folder


def save_tiny_rosinality_checkpoint(path: Path, **kw) -> Path:
    """A tiny StyleGAN2 saved the way rosinality's train.py saves (``g``, ``d``, ``g_ema``, ``latent_avg``); returns
    ``path``. Our parameter names are rosinality's, so only ``latent_avg`` moves out of the generator's state."""
    G, D = tiny_stylegan2_models(**kw)
    g_state = {k: v for k, v in G.state_dict().items() if k != "latent_avg"}
    torch.save({"g": g_state, "d": D.state_dict(), "g_ema": g_state, "latent_avg": G.state_dict()["latent_avg"][None]}, path)
    return path


def write_random_images(folder: Path, count: int = 4, size: int = 16, seed: int = 3) -> Path:
    """``count`` random RGB PNGs (deterministic for ``seed``) as a tiny target domain; returns ``folder``."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    gen = torch.Generator().manual_seed(seed)
    for i in range(count):
        Image.fromarray((torch.rand(size, size, 3, generator=gen) * 255).byte().numpy()).save(folder / f"{i}.png")
    return folder


# ----------------------------------------------------------------------------- training runs
def run(source, data, output_dir, method, options=None, *, steps: int = 6, method_instance=None, **overrides):
    """A short CPU adaptation run (4 shots, batch 2, seed 1, no checkpoints or grids unless overridden).

    Returns ``(trainer, output_dir)``; ``trainer.method`` is the method object after training.
    ``method_instance`` replaces the registered method (e.g. a subclass that records what it sees).
    """
    from fsgen_hub.training.arguments import TrainingArguments
    from fsgen_hub.training.trainer import AdaptationTrainer

    settings = dict(source=str(source), data=str(data), shots=4, method=method, method_options=dict(options or {}),
                    steps=steps, batch_size=2, output_dir=str(output_dir), save_every=0, sample_every=0,
                    log_every=1, device="cpu", seed=1)
    settings.update(overrides)
    trainer = AdaptationTrainer(TrainingArguments(**settings), method=method_instance)
    return trainer, trainer.train()


# ----------------------------------------------------------------------------- parity
# Largest output difference allowed against the reference implementations' outputs in ../shared/fixtures
# (README "Model zoo and conversion"). Measured on CPU: rosinality 1.4e-6 with one thread (0 with two),
# NVlabs 3.3e-6 (up to 6.1e-6 reported on other machines): float32 sums in another order, never bit-exact
# by construction.
PARITY_ATOL = 1e-5


# ----------------------------------------------------------------------------- local hub
HUB_WRITE_TOKEN = "hf_TestWriteToken0123456789abcdef"  # user "alice" on the local hub server (conftest ``hub``)


# ----------------------------------------------------------------------------- CLI
def fsgen_cli(*args, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """``python -m fsgen_hub ARGS`` in a subprocess: offline, one thread, output captured as text.
    ``env`` adds variables to this process's environment; a value of None removes one."""
    merged = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", **(env or {})}
    merged = {k: v for k, v in merged.items() if v is not None}
    return subprocess.run([sys.executable, "-m", "fsgen_hub", *map(str, args)], capture_output=True, text=True,
                          env=merged, timeout=timeout)


def assert_one_line_error(result: subprocess.CompletedProcess, pattern: str | None = None) -> None:
    """The CLI contract for bad input: exit code 2 and exactly one ``error: ...`` line on stderr."""
    import re

    assert result.returncode == 2, (result.returncode, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    if pattern is not None:
        assert re.search(pattern, lines[0]), lines[0]
