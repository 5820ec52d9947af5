"""Filter masks and the Fisher-scheduled methods built on them (RICK, DAP).

``UnitMasks`` acts on the models' ``fisher_units()`` (RICK's filter banks of G and D): a filter can
be *pruned* (its slices of every entry held at exactly zero) or *frozen* (held at its value). Masks
act on weights, gradients and Adam state: gradients of masked entries are zeroed with their optimizer
moments, and after every optimizer step pruned entries are re-zeroed, so neither momentum nor
numerical noise can move them. Masks keep shapes (no removed branches, DDP-safe).

``FilterMasks`` acts on ``filter_layers()`` (a filter with its coupled parameters and the consumer
slices that read it) so that ``slim`` can remove pruned filters physically and exactly.
"""
from __future__ import annotations

import copy
import fnmatch
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from fsgen_hub.methods.base import AdaptationMethod, AdaptContext, MethodConfig
from fsgen_hub.methods.fisher import ContinuousFisher, adversarial_parameter_fisher, squared_gradients, unit_scores
from fsgen_hub.models.base import FilterLayer, FisherUnit
from fsgen_hub.utils.constants import PRUNING_NAME
from fsgen_hub.utils.errors import FsgenError


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


# ----------------------------------------------------------------------------- unit masks
def unit_size(model: torch.nn.Module, unit: FisherUnit) -> int:
    name, axis = unit.entries[0]
    return dict(model.named_parameters())[name].shape[axis]


class UnitMasks:
    """Pruned/frozen boolean masks per Fisher unit of one model (G or D)."""

    def __init__(self, model: torch.nn.Module, units: list[FisherUnit]):
        self.model, self.units = model, list(units)
        self.names = [u.name for u in self.units]
        self.pruned = {u.name: torch.zeros(unit_size(model, u), dtype=torch.bool) for u in self.units}
        self.frozen = {u.name: torch.zeros(unit_size(model, u), dtype=torch.bool) for u in self.units}
        self.pruned_values: dict[str, torch.Tensor] = {}  # revival: entry values when last pruned

    def _slices(self, unit: FisherUnit, mask: torch.Tensor):
        params = dict(self.model.named_parameters())
        for name, axis in unit.entries:
            tensor = params.get(name)
            if tensor is not None:
                yield name, tensor, FilterMasks._select(tensor, axis, mask.to(tensor.device))

    @torch.no_grad()
    def mask_gradients(self, optimizer=None, hold_second_moments: bool = False) -> None:
        """Zero the gradients and first moments of held (pruned or frozen) filters. Their second moments
        decay while held, as in RICK, unless ``hold_second_moments``: then they are kept as they were (see
        ``restore_second_moments``), so that a filter released after a long hold does not take steps of up
        to lr / sqrt(beta2 ** held_steps) when its gradient returns."""
        self._held_second_moments = []
        for unit in self.units:
            held = self.pruned[unit.name] | self.frozen[unit.name]
            if not held.any():
                continue
            for _, tensor, sel in self._slices(unit, held):
                if tensor.grad is not None:
                    tensor.grad.masked_fill_(sel, 0.0)
                # a zero first moment makes Adam's update exactly zero (zeroing the second moment too would
                # make the first step after release ~1/sqrt(1-beta2) lr)
                state = _optimizer_state(optimizer, tensor)
                for key in ("exp_avg", "momentum_buffer"):
                    if key in state and state[key].shape == tensor.shape:
                        state[key].masked_fill_(sel, 0.0)
                second = state.get("exp_avg_sq")
                if hold_second_moments and second is not None and second.shape == tensor.shape:
                    self._held_second_moments.append((second, sel, second[sel].clone()))

    @torch.no_grad()
    def restore_second_moments(self) -> None:
        """After the optimizer step: held filters get back the second moments they had before it."""
        for second, sel, values in getattr(self, "_held_second_moments", []):
            second[sel] = values
        self._held_second_moments = []

    @torch.no_grad()
    def apply_to_weights(self) -> None:
        for unit in self.units:
            if self.pruned[unit.name].any():
                for _, tensor, sel in self._slices(unit, self.pruned[unit.name]):
                    tensor.masked_fill_(sel, 0.0)

    @torch.no_grad()
    def update(self, prune: list[torch.Tensor], freeze: list[torch.Tensor], permanent: bool, revive: bool) -> None:
        """New decisions: pruned sets are replaced (or merged when ``permanent``, as RICK's union), a
        filter no longer pruned gets its values from when it was pruned back (``revive``), frozen sets
        are replaced; a pruned filter is never also frozen."""
        for unit, new_prune, new_freeze in zip(self.units, prune, freeze):
            old = self.pruned[unit.name]
            new = (new_prune | old) if permanent else new_prune.clone()
            revived, newly = old & ~new, new & ~old
            for name, tensor, sel in self._slices(unit, revived):
                if revive and name in self.pruned_values:
                    tensor.copy_(torch.where(sel, self.pruned_values[name].to(tensor.device), tensor))
            for name, tensor, sel in self._slices(unit, newly):
                snapshot = self.pruned_values.setdefault(name, tensor.detach().cpu().clone())
                snapshot.copy_(torch.where(sel.cpu(), tensor.detach().cpu(), snapshot))
            self.pruned[unit.name] = new
            self.frozen[unit.name] = new_freeze & ~new
        self.apply_to_weights()

    def copy_pruned_to(self, other: torch.nn.Module) -> UnitMasks:
        masks = UnitMasks(other, self.units)
        masks.pruned = {k: v.clone() for k, v in self.pruned.items()}
        return masks

    def fractions(self, which: str) -> list[float]:
        masks = self.pruned if which == "pruned" else self.frozen
        return [float(masks[n].float().mean()) for n in self.names]

    def state_dict(self) -> dict:
        return {"pruned": {k: v.clone() for k, v in self.pruned.items()},
                "frozen": {k: v.clone() for k, v in self.frozen.items()}, "pruned_values": dict(self.pruned_values)}

    def load_state_dict(self, state: dict) -> None:
        self.pruned = {k: v.clone().bool() for k, v in state["pruned"].items()}
        self.frozen = {k: v.clone().bool() for k, v in state["frozen"].items()}
        self.pruned_values = dict(state.get("pruned_values", {}))

    def summary(self) -> dict[str, dict[str, float]]:
        return {n: {"pruned": p, "frozen": f} for n, p, f in zip(self.names, self.fractions("pruned"), self.fractions("frozen"))}

    def filter_layer_masks(self) -> dict[str, torch.Tensor]:
        """Pruned masks of the units whose first entry is a ``filter_layers()`` kernel, keyed by that
        layer's name (what ``slim_generator`` takes). Slimming then also drops the layer's coupled
        parameters: exact when the unit holds them too (DCGAN: kernel + BN affine), not when it leaves
        a bias that still adds a constant (StyleGAN2's activation bias)."""
        params = dict(self.model.named_parameters())
        by_weight = {id(layer.weight): layer.name for layer in self.model.filter_layers()}
        return {by_weight[id(params[u.entries[0][0]])]: self.pruned[u.name].clone()
                for u in self.units if id(params[u.entries[0][0]]) in by_weight}


# ----------------------------------------------------------------------------- decision rules
def pooled_percentile_decision(scores: list[torch.Tensor], units: list[FisherUnit], fisher_quantile: float,
                               prune_quantile: float) -> tuple[list, list, dict[str, dict[str, float]]]:
    """RICK's rule for one network: the units of each ``group`` are pooled, ``cutline`` is the
    ``fisher_quantile``-th and ``pruneline`` the ``prune_quantile``-th percentile (in percent, linear
    interpolation as numpy.percentile) of the pooled scores; freeze ``score > cutline``, prune
    ``score <= pruneline`` (``<`` for ``strict_prune`` units, RICK's D skips)."""
    thresholds: dict[str, dict[str, float]] = {}
    for group in dict.fromkeys(u.group for u in units):
        pooled = torch.cat([s.double() for s, u in zip(scores, units) if u.group == group])
        thresholds[group] = {"cutline": float(torch.quantile(pooled, fisher_quantile / 100.0)),
                             "pruneline": float(torch.quantile(pooled, prune_quantile / 100.0))}
    prune, freeze = [], []
    for s, u in zip(scores, units):
        t = thresholds[u.group]
        freeze.append(s > t["cutline"])
        prune.append(s < t["pruneline"] if u.strict_prune else s <= t["pruneline"])
    return prune, freeze, thresholds


def cumulative_share_decision(importance: list[torch.Tensor], tau: float, max_layer_ratio: float,
                              freeze_share: float, budget: float | None) -> tuple[list, list, list[float]]:
    """DAP, per layer (unit): normalise importance to shares; prune the least important filters whose
    cumulative share stays <= tau (at most ``max_layer_ratio`` of the layer); freeze the most important
    filters that together hold ``freeze_share`` of the layer's importance. A global ``budget``
    (fraction of all filters) keeps only the globally lowest-share pruning candidates."""
    prune, freeze, shares_all = [], [], []
    for imp in importance:
        imp = imp.double()
        n = imp.numel()
        total = imp.sum()
        shares = imp / total if total > 0 else torch.full_like(imp, 1.0 / n)
        shares_all.append(shares)
        order = torch.argsort(shares)  # ascending
        cumulative = torch.cumsum(shares[order], 0)
        k = min(int((cumulative <= tau + 1e-12).sum()), int(max_layer_ratio * n))
        mask = torch.zeros(n, dtype=torch.bool)
        mask[order[:k]] = True
        prune.append(mask)
        fmask = torch.zeros(n, dtype=torch.bool)
        if freeze_share > 0:
            desc = torch.flip(order, [0])
            covered = torch.cumsum(shares[desc], 0)
            m = min(n, int((covered < freeze_share).sum()) + 1)
            fmask[desc[:m]] = True
            fmask &= ~mask
        freeze.append(fmask)
    if budget is not None:
        limit = int(budget * sum(m.numel() for m in prune))
        candidates = sorted((float(shares_all[i][j]), i, j) for i, m in enumerate(prune) for j in torch.nonzero(m).flatten().tolist())
        for _, i, j in candidates[limit:]:
            prune[i][j] = False
    return prune, freeze, [float(m.float().mean()) for m in prune]


# ----------------------------------------------------------------------------- the shared method
@dataclass
class PruningConfig(MethodConfig):
    """Fisher-scheduled freezing and pruning of G's (and D's) filters; RICK and DAP fix the defaults."""

    units: list[str] = field(default_factory=lambda: ["*"], metadata={"help": "fnmatch patterns of the Fisher units (models' fisher_units() names) to manage"})
    discriminator: bool = field(default=True, metadata={"help": "also freeze/prune the discriminator's filters (RICK does)"})
    interval: int = field(default=50, metadata={"help": "re-estimate importance and re-decide every N steps after the warm-up (RICK: fisher_freq 50)"})
    dynamic: bool = field(default=True, metadata={"help": "re-decide every interval; false: one decision at the end of the warm-up"})
    fisher: str = field(default="ema", metadata={"help": "ema: RICK's single-image passes on the EMA copies of G and D; continuous: from the training steps' gradients"})
    fisher_samples: int = field(default=5, metadata={"help": "ema: single-image passes per estimate (RICK: num_fisher_img 5)"})
    fisher_seed: int = field(default=0, metadata={"help": "ema: seed of the fixed latents reused by every estimate (RICK reuses its _noise files)"})
    fisher_mode: str = field(default="mean", metadata={"help": "continuous: mean (cumulative over steps) or ema"})
    fisher_decay: float = field(default=0.99, metadata={"help": "continuous ema: decay per step"})
    ratio_rule: str = field(default="cumulative_share", metadata={"help": "cumulative_share (DAP, per layer) or global_percentile (RICK, pooled)"})
    fisher_quantile: float = field(default=40.0, metadata={"help": "global_percentile: freeze filters above this percentile of their pool (RICK Babies: 40)"})
    prune_quantile: float = field(default=0.1, metadata={"help": "global_percentile: prune filters at or below this percentile (RICK Babies: 0.1)"})
    tau: float = field(default=0.002, metadata={"help": "cumulative_share: prune the least important filters holding <= tau of a layer's importance"})
    max_layer_ratio: float = field(default=0.1, metadata={"help": "cumulative_share: never prune more than this fraction of a layer"})
    freeze_share: float = field(default=0.0, metadata={"help": "cumulative_share: freeze the top filters holding this share of a layer's importance (0: none)"})
    budget: float | None = field(default=None, metadata={"help": "cumulative_share: at most this fraction of all filters pruned"})
    permanent: bool = field(default=False, metadata={"help": "pruned filters stay pruned (union over decisions), as in RICK"})
    revive: bool = field(default=True, metadata={"help": "restore a pruned filter (its values at pruning time) when a later decision keeps it"})
    keep_pruned_scores: bool = field(default=False, metadata={"help": "a pruned filter keeps the importance it had when pruned instead of the Fisher measured at zero weights (which StyleGAN2's demodulation inflates ~1e8x, reviving it at once); RICK: measured"})
    hold_second_moments: bool = field(default=False, metadata={"help": "held (frozen or pruned) filters keep Adam's second moments instead of letting them decay (RICK: decay), so a released filter takes no oversized step"})

    def __post_init__(self):
        if self.fisher not in ("ema", "continuous"):
            raise FsgenError("fisher must be 'ema' or 'continuous'")
        if self.fisher_mode not in ("mean", "ema"):
            raise FsgenError("fisher_mode must be 'mean' or 'ema'")
        if self.ratio_rule not in ("cumulative_share", "global_percentile"):
            raise FsgenError("ratio_rule must be 'cumulative_share' or 'global_percentile'")
        if not 0 <= self.tau < 1 or not 0 <= self.max_layer_ratio <= 1 or not 0 <= self.freeze_share <= 1:
            raise FsgenError("tau must be in [0, 1), max_layer_ratio and freeze_share in [0, 1]")
        if not 0 <= self.prune_quantile <= self.fisher_quantile <= 100:
            raise FsgenError("need 0 <= prune_quantile <= fisher_quantile <= 100 (percent)")
        if self.interval < 1 or self.fisher_samples < 1:
            raise FsgenError("interval and fisher_samples must be at least 1")


class FilterPruningMethod(AdaptationMethod):
    """Fisher-scheduled unit masks on G (and D); subclasses fix defaults and the training recipe."""

    config_class = PruningConfig

    def prepare(self, ctx: AdaptContext) -> None:
        c = self.config
        G = ctx.unwrap(ctx.G)
        nets = {"G": G}
        if c.discriminator and ctx.D is not None:
            nets["D"] = ctx.unwrap(ctx.D)
        self.masks: dict[str, UnitMasks] = {}
        for key, model in nets.items():
            units = [u for u in model.fisher_units() if any(fnmatch.fnmatch(u.name, p) for p in c.units)]
            if key == "G" and not units:
                raise FsgenError(f"no generator Fisher unit matches {c.units}; names: {', '.join(u.name for u in model.fisher_units())}")
            self.masks[key] = UnitMasks(model, units)
        self.fisher = {key: ContinuousFisher([unit_size(m.model, u) for u in m.units], mode=c.fisher_mode, decay=c.fisher_decay)
                       for key, m in self.masks.items()}
        self.D_ema = copy.deepcopy(nets["D"]).eval().requires_grad_(False) if "D" in nets else None
        self.fisher_latents = G.make_latents(c.fisher_samples, seed=c.fisher_seed)
        self.history: list[dict] = []
        self._last_scores: dict[str, list[torch.Tensor]] = {}

    # --- hooks -------------------------------------------------------------------------
    def after_backward(self, ctx: AdaptContext, phase: str) -> None:
        key = phase[0]  # "G", "G_reg", "D"
        if key not in self.masks:
            return
        if self.config.fisher == "continuous" and phase in ("G", "D") and ctx.step >= ctx.args.warmup_steps:
            masks = self.masks[key]
            scores = unit_scores(squared_gradients(masks.model), masks.units)
            if self.config.keep_pruned_scores:
                scores = self._held_pruned_scores(key, scores)
            self.fisher[key].update(scores)
        self.masks[key].mask_gradients(ctx.optimizers.get(key), self.config.hold_second_moments)

    def after_optimizer_step(self, ctx: AdaptContext, phase: str) -> None:
        if phase[0] in self.masks:
            self.masks[phase[0]].restore_second_moments()
            self.masks[phase[0]].apply_to_weights()

    def on_step_end(self, ctx: AdaptContext, step: int) -> None:
        if self.D_ema is not None:
            with torch.no_grad():
                for p_ema, p in zip(self.D_ema.parameters(), ctx.unwrap(ctx.D).parameters()):
                    p_ema.lerp_(p.detach(), 1 - ctx.ema_beta)
        warmup, done = ctx.args.warmup_steps, step + 1
        due = done >= warmup and (done - warmup) % self.config.interval == 0
        if due and (self.config.dynamic or not self.history):
            self.decide(ctx, done)
        self.masks["G"].copy_pruned_to(ctx.G_ema).apply_to_weights()

    def _held_pruned_scores(self, key: str, scores: list[torch.Tensor]) -> list[torch.Tensor]:
        """Scores with each pruned filter's replaced by the estimate it holds: a filter held at zero weights has
        no meaningful Fisher (StyleGAN2's demodulation divides by sqrt(eps) there: its squared gradient is
        ~1e8 times a live filter's), and counting it would revive every pruned filter at the next decision.
        Before the first continuous update a pruned filter starts level with its unit's least important kept one."""
        masks, fisher = self.masks[key], self.fisher[key]
        held = []
        for i, (unit, score) in enumerate(zip(masks.units, scores)):
            pruned = masks.pruned[unit.name].to(score.device)
            if not pruned.any():
                held.append(score)
                continue
            kept_min = score[~pruned].min() if (~pruned).any() else score.new_zeros(())
            estimate = fisher.values[i].to(score) if fisher.count > 0 else kept_min.expand_as(score)
            held.append(torch.where(pruned, estimate, score))
        return held

    # --- decisions ---------------------------------------------------------------------
    def importance(self, ctx: AdaptContext) -> dict[str, list[torch.Tensor]]:
        # the continuous estimate is empty at the end of the warm-up (G has not stepped yet): that first
        # decision takes RICK's passes on the EMA copies, as RICK's own first decision does
        if self.config.fisher == "continuous" and all(f.count > 0 for f in self.fisher.values()):
            return {key: [v.clone().double() for v in f.values] for key, f in self.fisher.items()}
        gen = torch.Generator().manual_seed(int(ctx.args.seed) * 1000003 + ctx.step)
        index = torch.randint(len(ctx.train_images), (len(self.fisher_latents),), generator=gen)
        D = self.D_ema if self.D_ema is not None else ctx.frozen_copy("fisher_D", ctx.D)
        fisher_g, fisher_d = adversarial_parameter_fisher(ctx.G_ema, D, self.fisher_latents, ctx.train_images[index.to(ctx.device)])
        fisher = {"G": fisher_g, "D": fisher_d}
        scores = {key: unit_scores(fisher[key], m.units) for key, m in self.masks.items()}
        if self.config.keep_pruned_scores:  # a pruned filter keeps the score it had at its last decision
            scores = {key: [torch.where(self.masks[key].pruned[u.name].to(now.device), last.to(now), now) if last is not None else now
                            for u, now, last in zip(self.masks[key].units, value, self._last_scores.get(key, [None] * len(value)))]
                      for key, value in scores.items()}
        return scores

    def rule(self, key: str, scores: list[torch.Tensor]) -> tuple[list, list, dict]:
        c = self.config
        if c.ratio_rule == "global_percentile":
            return pooled_percentile_decision(scores, self.masks[key].units, c.fisher_quantile, c.prune_quantile)
        prune, freeze, _ = cumulative_share_decision(scores, c.tau, c.max_layer_ratio, c.freeze_share, c.budget)
        return prune, freeze, {}

    def decide(self, ctx: AdaptContext, step: int) -> None:
        importance = self.importance(ctx)
        record: dict[str, Any] = {"step": step}
        for key, masks in self.masks.items():
            scores = importance[key]
            if ctx.accelerator.num_processes > 1:  # every process must take the same decision
                scores = [ctx.accelerator.reduce(v.to(ctx.device), reduction="mean").cpu() for v in scores]
            self._last_scores[key] = [v.detach().cpu() for v in scores]
            prune, freeze, thresholds = self.rule(key, scores)
            masks.update(prune, freeze, permanent=self.config.permanent, revive=self.config.revive)
            prefix = "" if key == "G" else "d_"
            record.update({f"{prefix}layers": masks.names, f"{prefix}ratios": masks.fractions("pruned"),
                           f"{prefix}frozen": masks.fractions("frozen"),
                           f"{prefix}fisher_mass": [float(v.sum()) for v in scores]})
            if thresholds:
                record[f"{prefix}thresholds"] = thresholds
        self.history.append(record)
        ctx.log({f"pruned/{n}": r for n, r in zip(record["layers"], record["ratios"])})

    # --- persistence and export -------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        state = {"history": json.dumps(self.history)}
        for key in self.masks:
            state[f"masks_{key}"] = self.masks[key].state_dict()
            state[f"fisher_{key}"] = self.fisher[key].state_dict()
            if key in self._last_scores:
                state[f"last_scores_{key}"] = self._last_scores[key]
        if self.D_ema is not None:
            state["D_ema"] = {k: v.cpu() for k, v in self.D_ema.state_dict().items()}
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.history = json.loads(state["history"])
        for key in self.masks:
            self.masks[key].load_state_dict(state[f"masks_{key}"])
            self.fisher[key].load_state_dict(state[f"fisher_{key}"])
            if f"last_scores_{key}" in state:
                self._last_scores[key] = list(state[f"last_scores_{key}"])
        if self.D_ema is not None and "D_ema" in state:
            self.D_ema.load_state_dict(state["D_ema"])

    def export(self, ctx: AdaptContext, generator: torch.nn.Module) -> torch.nn.Module:
        self.masks["G"].copy_pruned_to(generator).apply_to_weights()
        return generator

    def write_artifacts(self, ctx: AdaptContext, output_dir) -> dict[str, str]:
        from fsgen_hub.methods.pruning_plot import plot_pruning
        from fsgen_hub.utils.io import write_json

        output_dir = Path(output_dir)
        final = {key: m.summary() for key, m in self.masks.items()}
        write_json(output_dir / PRUNING_NAME, {"decisions": self.history, "final": final["G"],
                                               "final_discriminator": final.get("D", {})})
        artifacts = {"pruning_json": PRUNING_NAME}
        if self.history:
            plot_pruning(self.history, output_dir / "pruning.png", title=f"{self.name}: pruned fraction per generator unit")
            artifacts["pruning_plot"] = "pruning.png"
        return artifacts
