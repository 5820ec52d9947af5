"""The base class of modulation methods (AdaFM, BSA): parametrizations attached to a frozen base generator.

Export bakes them into a plain generator (``fsgen_hub.methods.delta.bake``); ``write_artifacts`` writes
the delta beside the run's merged model as ``<run>/adapter/`` (``fsgen_hub.methods.adapters``).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import ClassVar

import torch
from torch import nn

from fsgen_hub.methods.adapters import save_delta
from fsgen_hub.methods.base import AdaptationMethod, AdaptContext
from fsgen_hub.methods.delta import bake, plain_state, weights_digest
from fsgen_hub.utils.constants import ADAPTER_SUBFOLDER
from fsgen_hub.utils.errors import CheckpointError


class ModulationMethod(AdaptationMethod):
    """A method that attaches adapter parametrizations to a frozen base generator (AdaFM, BSA).

    Subclasses implement ``attach(G)`` (identity-initialised parametrizations, usable on a bare generator,
    e.g. when loading a delta) and call ``snapshot_base(ctx)`` at the start of ``prepare``. Export bakes a copy
    of the EMA generator; ``write_artifacts`` writes the delta to ``<run>/adapter``.
    """

    supports_delta: ClassVar[bool] = True  # what fsgen_hub.methods.adapters checks before loading a delta

    def attach(self, generator: nn.Module) -> None:
        raise NotImplementedError

    def extra_adapter_tensors(self) -> dict[str, torch.Tensor]:
        """Method-level tensors that belong in the delta but not in the generator (BSA's latents)."""
        return {}

    def load_extra_adapter_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        if tensors:
            raise CheckpointError(f"unexpected tensors {sorted(tensors)[:3]} in the delta of {self.name}")

    def snapshot_base(self, ctx: AdaptContext) -> None:
        G = ctx.unwrap(ctx.G)
        self.base_state = {k: v.detach().cpu().clone() for k, v in plain_state(G).items()}
        self.base_digest = weights_digest(G)
        info = getattr(G, "source_info", {}) or {}
        source = getattr(ctx.args, "source", None) or info.get("model_id")
        self.base_model = {"id": source, "revision": info.get("revision"), "commit": info.get("commit"),
                           "sha256": self.base_digest}
        if source is not None and Path(str(source)).expanduser().is_dir():
            # published with the model: a local base by its name and its path relative to the adapter folder
            # (what load_delta follows for a local adapter), never the machine's absolute path
            folder = Path(str(source)).expanduser().resolve()
            adapter_dir = (Path(ctx.output_dir) / ADAPTER_SUBFOLDER).resolve() if getattr(ctx, "output_dir", None) else None
            self.base_model.update(id=folder.name, local=True,
                                   path=Path(os.path.relpath(folder, adapter_dir)).as_posix() if adapter_dir else None)

    def export(self, ctx: AdaptContext, generator: nn.Module) -> nn.Module:
        # a new plain generator: the parametrized EMA generator is still needed by write_artifacts (the delta)
        return bake(generator)

    def write_artifacts(self, ctx: AdaptContext, output_dir) -> dict[str, str]:
        save_delta(self, ctx.G_ema, Path(output_dir) / ADAPTER_SUBFOLDER)
        return {"adapter": ADAPTER_SUBFOLDER}
