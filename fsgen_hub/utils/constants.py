"""Every file name of the model-folder format (docs/CONTRACTS.md) and the package version, defined once.

The lowest layer: it imports nothing from the package, so every other module may use it.
"""
from __future__ import annotations

__version__ = "0.1.0"

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
DISCRIMINATOR_SUBFOLDER = "discriminator"
LINEAGE_NAME = "lineage.json"
METRICS_NAME = "metrics.jsonl"
CARD_NAME = "README.md"
PRUNING_NAME = "pruning.json"

ADAPTER_SUBFOLDER = "adapter"
ADAPTER_CONFIG_NAME = "adapter_config.json"
ADAPTER_WEIGHTS_NAME = "adapter_model.safetensors"

# Class-level hub metadata, as PyTorchModelHubMixin intends (it fills ModelCardData and the card's links).
LIBRARY_NAME = "fsgen_hub"
PIPELINE_TAG = "unconditional-image-generation"
REPO_URL = "https://github.com/fsgen-hub/fsgen_hub"
DOCS_URL = "https://github.com/fsgen-hub/fsgen_hub#readme"
