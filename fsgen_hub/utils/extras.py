"""Optional dependencies: which extra installs each one, and a one-line error when it is missing.

The core install (``pip install fsgen_hub``) loads, samples, saves and publishes models: torch,
huggingface-hub, safetensors, numpy, pillow and jinja2 (model cards). Everything else comes with an
extra, as diffusers does: ``[train]`` (``fsgen adapt``/``train``), ``[metrics]`` (FID/KID/LPIPS, face rate),
``[demo]`` (Gradio), ``[all]``; ``[dev]`` is ``[all]`` plus the test tools.
"""
from __future__ import annotations

import importlib
from types import ModuleType

from fsgen_hub.utils.errors import FsgenError

# import name -> (pip name, extra that installs it)
OPTIONAL = {
    "accelerate": ("accelerate", "train"),
    "datasets": ("datasets", "train"),
    "tensorboard": ("tensorboard", "train"),
    "matplotlib": ("matplotlib", "train"),
    "gan_face_generate": ("gan-face-generate", "train"),
    "torchmetrics": ("torchmetrics", "metrics"),
    "torch_fidelity": ("torch-fidelity", "metrics"),
    "lpips": ("lpips", "metrics"),
    "torchvision": ("torchvision", "metrics"),
    "cv2": ("opencv-python-headless", "metrics"),
    "gradio": ("gradio", "demo"),
}


class MissingDependencyError(FsgenError):
    """An optional package is not installed; the message names the extra that installs it."""


def install_hint(module: str) -> str:
    pip_name, extra = OPTIONAL[module.split(".")[0]]
    return f"pip install 'fsgen_hub[{extra}]' (or pip install {pip_name})"


def require(module: str, purpose: str) -> ModuleType:
    """``importlib.import_module(module)``, or a one-line MissingDependencyError saying what to install."""
    top = module.split(".")[0]
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        missing = (exc.name or "").split(".")[0]
        if missing != top and missing not in OPTIONAL:
            raise  # something else is broken inside the package: not a missing extra
        raise MissingDependencyError(f"{purpose} needs {OPTIONAL[missing or top][0]}: {install_hint(missing or top)}") from None
