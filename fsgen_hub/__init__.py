"""fsgen_hub: few-shot cross-domain GAN adaptation as a Hugging Face model zoo.

The public names are imported lazily so that ``import fsgen_hub`` (and ``fsgen --help``) stays fast; the
``TYPE_CHECKING`` block names the same imports statically, for type checkers and for the import-linter
contract (tests/test_layers.py), which therefore sees that no module of the package imports this one back.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from fsgen_hub.utils.constants import __version__

if TYPE_CHECKING:
    from fsgen_hub.auto import AutoDiscriminator, AutoGenerator  # noqa: F401
    from fsgen_hub.methods.base import get_method, list_methods, register_method  # noqa: F401
    from fsgen_hub.metrics.base import evaluate  # noqa: F401
    from fsgen_hub.models.convert import convert_checkpoint  # noqa: F401
    from fsgen_hub.models.dcgan import DCGANConfig, DCGANDiscriminator, DCGANGenerator  # noqa: F401
    from fsgen_hub.models.stylegan2 import StyleGAN2Config, StyleGAN2Discriminator, StyleGAN2Generator  # noqa: F401
    from fsgen_hub.training.arguments import TrainingArguments  # noqa: F401
    from fsgen_hub.training.trainer import AdaptationTrainer  # noqa: F401
    from fsgen_hub.utils.errors import FsgenError  # noqa: F401

_LAZY = {
    "AutoGenerator": "fsgen_hub.auto",
    "AutoDiscriminator": "fsgen_hub.auto",
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
