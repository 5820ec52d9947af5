"""DAP: Fisher-information-guided *dynamic* filter pruning for cross-domain few-shot generation.

Seed paper: "A dynamic pruning approach for cross-domain few-shot image generation", Journal of
Graphics, 2026. Its equations are not available to us. DAP is built as RICK's descendant: it trains
with RICK's recipe (see ``fsgen_hub.methods.rick``: only G's synthesis convs and D's blocks after
fromRGB train, a D-only warm-up, batch 2, R1 γ 10, path-length regularisation, style mixing 0.9,
lazy-regularisation Adam, EMA), scores the same filter units of G and D (``fisher_units()``: G
kernels per output channel, G style affines per input channel, D ResBlock convs and skips) and acts
on them the same way (freeze = gradients held at zero, prune = weights held at zero). What differs:

1. Importance (``fisher="continuous"``). Every unit's Fisher is the running mean, over training steps,
   of the squared gradient of the step's own losses (G's adversarial loss for G, D's for D), reduced to
   filters as RICK does. It costs no extra pass; ``fisher="ema"`` takes RICK's periodic single-image
   passes on the EMA copies instead. The first decision, at the end of the warm-up, comes before any
   G step, so it uses those passes in either mode. (With a mini-batch of B, the squared batch gradient estimates
   (1/B)·Fisher + (1 − 1/B)·(mean gradient)², see fisher.py.)
2. Per-layer ratios from cumulative importance (``ratio_rule="cumulative_share"``). Within each unit
   the scores become shares s_f = F_f / Σ F; sorted ascending, the unit's pruning ratio is the largest
   k/n whose k smallest shares sum to at most ``tau``, capped at ``max_layer_ratio``. A layer whose
   importance is spread out keeps its filters; one dominated by a few sheds the rest. RICK's one
   threshold per pool (``ratio_rule="global_percentile"``) can wipe out a uniformly weak layer.
3. Preservation. The most important filters of each unit, those holding ``freeze_share`` of its
   importance, are frozen ("removing incompatible filters while preserving general structural semantic
   information"); RICK freezes the top 60 % of each pool.
4. Dynamics. The decision is re-taken every ``interval`` steps from the current estimate
   (``dynamic``); a filter pruned earlier and not selected again is revived with the values it had
   when pruned (``revive``); RICK merges pruned sets for good. Two things make re-deciding safe, where
   RICK's one-way decisions never needed them: a pruned filter keeps the importance it had when pruned
   (``keep_pruned_scores``; measured at zero weights, StyleGAN2's demodulation inflates its squared
   gradient ~1e8 times, which revived and froze every pruned filter at the next decision), and held
   filters keep Adam's second moments (``hold_second_moments``), so a filter released after a long hold
   does not take a step of up to lr / sqrt(beta2 ** held_steps).

Defaults, chosen on faces64 → babies (seed 0, 1,000 steps, README "DAP, the rule we implement") and then
frozen: tau 0.001, max_layer_ratio 0.05, freeze_share 0.9, keep_pruned_scores and hold_second_moments on.
Ablation switches: ``dynamic=false`` (one decision at the
end of the warm-up), ``ratio_rule=global_percentile`` (RICK's pooled percentiles
``fisher_quantile``/``prune_quantile``), ``freeze_share=0`` (no preservation), ``revive=false``.
``fisher=ema, ratio_rule=global_percentile, permanent=true, revive=false, keep_pruned_scores=false,
hold_second_moments=false`` takes RICK's decisions
(tested against the official code's output).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from fsgen_hub.methods.base import register_method
from fsgen_hub.methods.pruning import FilterPruningMethod, PruningConfig


@dataclass
class DAPConfig(PruningConfig):
    fisher: str = field(default="continuous", metadata={"help": "continuous: running mean of the training steps' squared gradients; ema: RICK's passes on the EMA copies"})
    ratio_rule: str = field(default="cumulative_share", metadata={"help": "cumulative_share: per-layer ratios from cumulative importance; global_percentile: RICK's pooled thresholds"})
    tau: float = field(default=0.001, metadata={"help": "prune the least important filters of a layer holding at most this share of its importance"})
    max_layer_ratio: float = field(default=0.05, metadata={"help": "never prune more than this fraction of a layer"})
    freeze_share: float = field(default=0.9, metadata={"help": "freeze the most important filters holding this share of a layer's importance (0: no freezing)"})
    dynamic: bool = field(default=True, metadata={"help": "re-decide every interval (false: one decision at the end of the warm-up)"})
    revive: bool = field(default=True, metadata={"help": "restore a pruned filter's values when a later decision keeps it"})
    keep_pruned_scores: bool = field(default=True, metadata={"help": "a pruned filter keeps the importance it had when pruned (false: the Fisher measured at zero weights, inflated by demodulation)"})
    hold_second_moments: bool = field(default=True, metadata={"help": "held filters keep Adam's second moments (false: they decay, as in RICK)"})


class DAP(FilterPruningMethod):
    description = "RICK's recipe with continuous Fisher, per-layer ratios from cumulative importance re-decided during training, freezing and revival"
    paper = "A dynamic pruning approach for cross-domain few-shot image generation, Journal of Graphics 2026"


register_method("dap", DAPConfig, DAP)
