"""fsgen_hub: few-shot cross-domain GAN adaptation as a Hugging Face model zoo.

The public names are imported lazily so that ``import fsgen_hub`` (and ``fsgen --help``) stays fast.
"""
from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "AutoGenerator": "fsgen_hub.hub",
    "AutoDiscriminator": "fsgen_hub.hub",
    "StyleGAN2Generator": "fsgen_hub.models.stylegan2",
    "StyleGAN2Discriminator": "fsgen_hub.models.stylegan2",
    "StyleGAN2Config": "fsgen_hub.models.stylegan2",
    "DCGANGenerator": "fsgen_hub.models.dcgan",
    "DCGANDiscriminator": "fsgen_hub.models.dcgan",
    "DCGANConfig": "fsgen_hub.models.dcgan",
    "convert_checkpoint": "fsgen_hub.models.convert",
    "AdaptationTrainer": "fsgen_hub.training.trainer",
    "TrainingArguments": "fsgen_hub.training.arguments",
    "register_method": "fsgen_hub.methods.base",
    "get_method": "fsgen_hub.methods.base",
    "list_methods": "fsgen_hub.methods.base",
    "evaluate": "fsgen_hub.metrics.base",
    "FsgenError": "fsgen_hub.utils.errors",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'fsgen_hub' has no attribute {name!r}")
