"""Filter masks and the schedule-driven pruning methods built on them (DAP, RICK).

A filter can be *pruned* (its kernel, coupled parameters and consumer slices held at exactly zero)
or *frozen* (held exactly at its value when frozen). Masks act on weights, gradients and Adam
state: gradients of masked entries are zeroed, their optimizer moments zeroed, and after every
optimizer step pruned entries are re-zeroed and frozen ones restored, so neither momentum nor
numerical noise can move them. Masks keep shapes (no removed branches, DDP-safe); ``slim`` removes
pruned filters physically at export.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from fsgen_hub.errors import FsgenError
from fsgen_hub.methods.base import AdaptationMethod, AdaptContext, MethodConfig
from fsgen_hub.methods.fisher import ContinuousFisher, filter_sq_grads, per_sample_filter_fisher
from fsgen_hub.models.base import FilterLayer


def _slices(layer: FilterLayer, include_self: bool = True, include_consumers: bool = True) -> list[tuple[str, int]]:
    entries = []
    if include_self:
        entries += [(None, layer.out_dim), *layer.coupled]
    if include_consumers:
        entries += layer.consumers
    return entries


class FilterMasks:
    """Pruned/frozen boolean masks per filter layer of one model."""

    def __init__(self, model: torch.nn.Module, layers: list[FilterLayer]):
        self.model = model
        self.names = [layer.name for layer in layers]
        self.pruned = {layer.name: torch.zeros(layer.num_filters, dtype=torch.bool) for layer in layers}
        self.frozen = {layer.name: torch.zeros(layer.num_filters, dtype=torch.bool) for layer in layers}
        self.frozen_values: dict[str, torch.Tensor] = {}   # param name -> snapshot (whole tensor)
        self.pruned_values: dict[str, torch.Tensor] = {}   # for revival: values at pruning time

    def layers(self) -> list[FilterLayer]:
        by_name = {layer.name: layer for layer in self.model.filter_layers()}
        return [by_name[name] for name in self.names]

    def _tensors(self):
        return {**dict(self.model.named_parameters()), **dict(self.model.named_buffers())}

    def _entries(self, layer, which: str):
        tensors = self._tensors()
        mask = self.pruned[layer.name] if which == "pruned" else self.frozen[layer.name]
        # a frozen filter's consumers stay trainable: freezing is about the filter's own parameters
        for name, axis in _slices(layer, include_consumers=(which == "pruned")):
            tensor = layer.weight if name is None else tensors.get(name)
            if tensor is not None:
                key = f"{layer.name}.weight" if name is None else name
                yield key, tensor, axis, mask.to(tensor.device)

    @staticmethod
    def _select(tensor: torch.Tensor, axis: int, mask: torch.Tensor) -> torch.Tensor:
        shape = [1] * tensor.ndim
        shape[axis] = -1
        return mask.view(shape).expand_as(tensor)

    @torch.no_grad()
    def apply_to_weights(self) -> None:
        layers = self.layers()
        for layer in layers:  # restore frozen filters first: a slice can be both frozen (own kernel)
            for key, tensor, axis, mask in self._entries(layer, "frozen"):  # and pruned (read by a
                if key in self.frozen_values and mask.any():               # pruned upstream filter)
                    sel = self._select(tensor, axis, mask)
                    tensor.copy_(torch.where(sel, self.frozen_values[key].to(tensor.device), tensor))
        for layer in layers:  # then pruning wins
            for _, tensor, axis, mask in self._entries(layer, "pruned"):
                tensor.masked_fill_(self._select(tensor, axis, mask), 0.0)

    @torch.no_grad()
    def mask_gradients(self, optimizer=None) -> None:
        for layer in self.layers():
            for which in ("pruned", "frozen"):
                for _, tensor, axis, mask in self._entries(layer, which):
                    if not mask.any():
                        continue
                    sel = self._select(tensor, axis, mask)
                    if tensor.grad is not None:
                        tensor.grad.masked_fill_(sel, 0.0)
                    state = _optimizer_state(optimizer, tensor)
                    for name in ("exp_avg", "exp_avg_sq", "momentum_buffer"):
                        if name in state and state[name].shape == tensor.shape:
                            state[name].masked_fill_(sel, 0.0)

    def snapshot_frozen(self) -> None:
        for layer in self.layers():
            for key, tensor, _, mask in self._entries(layer, "frozen"):
                if mask.any() and key not in self.frozen_values:
                    self.frozen_values[key] = tensor.detach().clone().cpu()

    def state_dict(self) -> dict:
        return {"pruned": {k: v.clone() for k, v in self.pruned.items()},
                "frozen": {k: v.clone() for k, v in self.frozen.items()},
                "frozen_values": dict(self.frozen_values), "pruned_values": dict(self.pruned_values)}

    def load_state_dict(self, state: dict) -> None:
        self.pruned = {k: v.clone().bool() for k, v in state["pruned"].items()}
        self.frozen = {k: v.clone().bool() for k, v in state["frozen"].items()}
        self.frozen_values = dict(state.get("frozen_values", {}))
        self.pruned_values = dict(state.get("pruned_values", {}))

    def copy_to(self, other: torch.nn.Module) -> FilterMasks:
        masks = FilterMasks(other, [l for l in other.filter_layers() if l.name in self.names])
        masks.pruned = {k: v.clone() for k, v in self.pruned.items()}
        return masks

    def summary(self) -> dict[str, dict[str, float]]:
        return {name: {"pruned": float(self.pruned[name].float().mean()), "frozen": float(self.frozen[name].float().mean())}
                for name in self.names}


def _optimizer_state(optimizer, tensor) -> dict:
    if optimizer is None:
        return {}
    inner = getattr(optimizer, "optimizer", optimizer)  # Accelerate wraps optimizers
    return inner.state.get(tensor, {})


# ----------------------------------------------------------------------------- decision rules
def global_percentile_decision(importance: list[torch.Tensor], low: float, high: float) -> tuple[list, list]:
    """RICK: one threshold pair over ALL filters; <= low percentile → prune, > high percentile → freeze."""
    everything = torch.cat(importance)
    lo = torch.quantile(everything, low / 100.0)
    hi = torch.quantile(everything, high / 100.0)
    return [imp <= lo for imp in importance], [imp > hi for imp in importance]


def cumulative_share_decision(importance: list[torch.Tensor], tau: float, max_layer_ratio: float,
                              freeze_share: float, budget: float | None) -> tuple[list, list, list[float]]:
    """DAP: per layer, normalise importance to shares; prune the least important filters whose
    cumulative share stays <= tau (at most ``max_layer_ratio`` of the layer); freeze the most
    important filters that together hold ``freeze_share`` of the layer's importance. A global
    ``budget`` (fraction of all filters) keeps only the globally lowest-share candidates."""
    prune, freeze, shares_all = [], [], []
    for imp in importance:
        n = imp.numel()
        total = imp.sum()
        shares = imp / total if total > 0 else torch.full_like(imp, 1.0 / n)
        shares_all.append(shares)
        order = torch.argsort(shares)  # ascending
        cumulative = torch.cumsum(shares[order], 0)
        k = int((cumulative <= tau + 1e-12).sum())
        k = min(k, int(max_layer_ratio * n))
        mask = torch.zeros(n, dtype=torch.bool)
        mask[order[:k]] = True
        prune.append(mask)
        fmask = torch.zeros(n, dtype=torch.bool)
        if freeze_share > 0:
            desc = torch.flip(order, [0])
            covered = torch.cumsum(shares[desc], 0)
            m = int((covered < freeze_share).sum()) + 1
            fmask[desc[:m]] = True
            fmask &= ~mask
        freeze.append(fmask)
    if budget is not None:
        total_filters = sum(m.numel() for m in prune)
        limit = int(budget * total_filters)
        candidates = [(float(shares_all[i][j]), i, j) for i, m in enumerate(prune) for j in torch.nonzero(m).flatten().tolist()]
        if len(candidates) > limit:
            keep = set((i, j) for _, i, j in sorted(candidates)[:limit])
            for i, m in enumerate(prune):
                for j in torch.nonzero(m).flatten().tolist():
                    if (i, j) not in keep:
                        m[j] = False
    ratios = [float(m.float().mean()) for m in prune]
    return prune, freeze, ratios


# ----------------------------------------------------------------------------- the shared method
@dataclass
class PruningConfig(MethodConfig):
    layers: list[str] = field(default_factory=lambda: ["*"], metadata={"help": "fnmatch patterns of G filter layers to manage"})
    interval: int = field(default=50, metadata={"help": "re-estimate importance and re-decide masks every N steps"})
    warmup_steps: int = field(default=0, metadata={"help": "steps that train D only before the first decision"})
    fisher: str = field(default="continuous", metadata={"help": "continuous (from training gradients) or on_demand (RICK's N single-image passes)"})
    fisher_mode: str = field(default="mean", metadata={"help": "continuous estimator: mean (cumulative) or ema"})
    fisher_samples: int = field(default=16, metadata={"help": "on-demand: single-image passes per estimate"})
    ratio_rule: str = field(default="cumulative_share", metadata={"help": "cumulative_share (DAP) or global_percentile (RICK)"})
    tau: float = field(default=0.05, metadata={"help": "DAP: prune the least important filters holding <= tau of a layer's importance"})
    max_layer_ratio: float = field(default=0.5, metadata={"help": "DAP: never prune more than this fraction of a layer"})
    freeze_share: float = field(default=0.0, metadata={"help": "DAP: freeze the top filters holding this share of a layer's importance"})
    budget: float | None = field(default=None, metadata={"help": "DAP: at most this fraction of all filters pruned"})
    low_percentile: float = field(default=5.0, metadata={"help": "global_percentile: prune at or below this percentile"})
    high_percentile: float = field(default=75.0, metadata={"help": "global_percentile: freeze above this percentile"})
    permanent: bool = field(default=False, metadata={"help": "pruned filters stay pruned (union over decisions), as in RICK"})
    revive: bool = field(default=True, metadata={"help": "DAP: restore a pruned filter (its values at pruning time) when a later decision keeps it"})
    export_slim: bool = field(default=False, metadata={"help": "export a physically smaller generator instead of the masked one"})

    def __post_init__(self):
        if self.fisher not in ("continuous", "on_demand"):
            raise FsgenError("fisher must be 'continuous' or 'on_demand'")
        if self.ratio_rule not in ("cumulative_share", "global_percentile"):
            raise FsgenError("ratio_rule must be 'cumulative_share' or 'global_percentile'")
        if not 0 <= self.tau < 1 or not 0 <= self.max_layer_ratio <= 1:
            raise FsgenError("tau must be in [0, 1) and max_layer_ratio in [0, 1]")


class FilterPruningMethod(AdaptationMethod):
    """Fisher-scheduled filter masks on the generator; subclasses only fix defaults."""

    config_class = PruningConfig

    def prepare(self, ctx: AdaptContext) -> None:
        G = ctx.unwrap(ctx.G)
        self.layers_used = [layer.name for layer in G.select_filter_layers(self.config.layers)]
        if not self.layers_used:
            raise FsgenError(f"no generator filter layer matches {self.config.layers}")
        self.masks = FilterMasks(G, [l for l in G.filter_layers() if l.name in self.layers_used])
        self.fisher = ContinuousFisher([l.num_filters for l in self.masks.layers()], mode=self.config.fisher_mode)
        self.history: list[dict] = []
        self.last_importance: list[torch.Tensor] | None = None

    # --- hooks -------------------------------------------------------------------------
    def after_backward(self, ctx: AdaptContext, phase: str) -> None:
        if phase != "G":
            return
        if ctx.step < self.config.warmup_steps:  # D-only warm-up: G does not move
            for p in ctx.G.parameters():
                p.grad = None
            return
        if self.config.fisher == "continuous":
            self.fisher.update(filter_sq_grads(ctx.unwrap(ctx.G), self.masks.layers()))
        self.masks.mask_gradients(ctx.optimizers.get("G"))

    def after_optimizer_step(self, ctx: AdaptContext, phase: str) -> None:
        if phase == "G":
            self.masks.apply_to_weights()

    def on_step_end(self, ctx: AdaptContext, step: int) -> None:
        due = step + 1 >= self.config.warmup_steps and (step + 1 - self.config.warmup_steps) % self.config.interval == 0
        if due:
            self.decide(ctx, step + 1)
        self.masks.copy_to(ctx.G_ema).apply_to_weights()

    # --- decisions ---------------------------------------------------------------------
    def importance(self, ctx: AdaptContext) -> list[torch.Tensor]:
        if self.config.fisher == "continuous":
            return [v.clone() for v in self.fisher.values]
        G_ema = ctx.G_ema
        D = ctx.unwrap(ctx.D)
        latents = torch.randn(self.config.fisher_samples, G_ema.z_dim,
                              generator=torch.Generator().manual_seed(int(ctx.args.seed) + ctx.step))
        G_ema.requires_grad_(True)
        layers = [l for l in G_ema.filter_layers() if l.name in self.layers_used]
        values = per_sample_filter_fisher(G_ema, lambda img: torch.nn.functional.softplus(-D(img)).mean(), latents, layers)
        G_ema.requires_grad_(False)
        return values

    def decide(self, ctx: AdaptContext, step: int) -> None:
        importance = self.importance(ctx)
        world = ctx.accelerator.num_processes
        if world > 1:  # every process must take the same decision
            importance = [ctx.accelerator.reduce(v.to(ctx.device), reduction="mean").cpu() for v in importance]
        # pruned filters keep the importance they had when pruned (their gradients are masked)
        if self.last_importance is not None:
            for i, name in enumerate(self.masks.names):
                pruned = self.masks.pruned[name]
                importance[i] = torch.where(pruned, self.last_importance[i], importance[i])
        self.last_importance = [v.clone() for v in importance]
        prune, freeze, ratios = self.rule(importance)
        self._set_masks(prune, freeze)
        self.history.append({
            "step": step,
            "layers": self.masks.names,
            "ratios": [float(self.masks.pruned[n].float().mean()) for n in self.masks.names],
            "frozen": [float(self.masks.frozen[n].float().mean()) for n in self.masks.names],
            "fisher_mass": [float(v.sum()) for v in importance],
        })
        ctx.log({f"pruned/{n}": r for n, r in zip(self.masks.names, self.history[-1]["ratios"])})

    def rule(self, importance):
        c = self.config
        if c.ratio_rule == "global_percentile":
            prune, freeze = global_percentile_decision(importance, c.low_percentile, c.high_percentile)
            return prune, freeze, [float(m.float().mean()) for m in prune]
        return cumulative_share_decision(importance, c.tau, c.max_layer_ratio, c.freeze_share, c.budget)

    @torch.no_grad()
    def _set_masks(self, prune: list[torch.Tensor], freeze: list[torch.Tensor]) -> None:
        tensors = self.masks._tensors()
        for i, layer in enumerate(self.masks.layers()):
            old = self.masks.pruned[layer.name]
            new = prune[i] | old if self.config.permanent else prune[i]
            revived = old & ~new
            if revived.any() and self.config.revive:
                for name, axis in _slices(layer):
                    key = f"{layer.name}.weight" if name is None else name
                    tensor = layer.weight if name is None else tensors[name]
                    if key in self.masks.pruned_values:
                        sel = FilterMasks._select(tensor, axis, revived.to(tensor.device))
                        tensor.copy_(torch.where(sel, self.masks.pruned_values[key].to(tensor.device), tensor))
            newly = new & ~old
            if newly.any():
                for name, axis in _slices(layer):
                    key = f"{layer.name}.weight" if name is None else name
                    tensor = layer.weight if name is None else tensors[name]
                    snapshot = self.masks.pruned_values.setdefault(key, tensor.detach().clone().cpu())
                    sel = FilterMasks._select(snapshot, axis, newly)
                    snapshot.copy_(torch.where(sel, tensor.detach().cpu(), snapshot))
            self.masks.pruned[layer.name] = new
            self.masks.frozen[layer.name] = freeze[i] & ~new
        self.masks.frozen_values = {}
        self.masks.apply_to_weights()
        self.masks.snapshot_frozen()

    # --- persistence and export -------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"masks": self.masks.state_dict(), "fisher": self.fisher.state_dict(), "history": json.dumps(self.history),
                "last_importance": self.last_importance}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.masks.load_state_dict(state["masks"])
        self.fisher.load_state_dict(state["fisher"])
        self.history = json.loads(state["history"])
        self.last_importance = state.get("last_importance")

    def export(self, ctx: AdaptContext, generator: torch.nn.Module) -> torch.nn.Module:
        masks = self.masks.copy_to(generator)
        masks.apply_to_weights()
        if self.config.export_slim:
            from fsgen_hub.models.slim import slim_generator

            return slim_generator(generator, masks.pruned)
        return generator

    def write_artifacts(self, ctx: AdaptContext, output_dir) -> dict[str, str]:
        from fsgen_hub.io import write_json
        from fsgen_hub.methods.pruning_plot import plot_pruning

        output_dir = Path(output_dir)
        write_json(output_dir / "pruning.json", {"decisions": self.history, "final": self.masks.summary()})
        artifacts = {"pruning_json": "pruning.json"}
        if self.history:
            plot_pruning(self.history, output_dir / "pruning.png", title=f"{self.name}: pruned fraction per layer")
            artifacts["pruning_plot"] = "pruning.png"
        return artifacts
