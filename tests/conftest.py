"""Shared fixtures (helper functions live in helpers.py). Keep models tiny (a few thousand parameters,
16-32 px): the suite runs on 2 CPU cores shared with other work."""
from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ["OMP_NUM_THREADS"] = "1"  # before torch is imported; subprocesses inherit it

import pytest  # noqa: E402
import torch  # noqa: E402

# save_tiny_dcgan_source and write_random_images stay importable from conftest for tests written before helpers.py
from helpers import HUB_WRITE_TOKEN, save_tiny_dcgan_source, tiny_dcgan_models, write_random_images  # noqa: E402, F401

# One thread: tiny models gain nothing from intra-op parallelism, and on busy cores a second thread makes
# every matrix product wait for a core (the tiny-model tests ran 10x slower under load with two).
torch.set_num_threads(1)

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
    return tiny_dcgan_models()


@pytest.fixture
def hub(monkeypatch, tmp_path):
    """The local hub server (tests/hub_server.py) with one user, alice, whose token is ``HUB_WRITE_TOKEN``;
    a test file needing other users or organisations defines its own ``hub``."""
    from hub_server import local_hub

    with local_hub(monkeypatch, tmp_path / "hf_cache", tokens={HUB_WRITE_TOKEN: "alice"}) as server:
        yield server
