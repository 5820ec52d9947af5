"""DAP: Fisher-information-guided *dynamic* filter pruning for cross-domain few-shot generation.

Seed paper: "A dynamic pruning approach for cross-domain few-shot image generation", Journal of
Graphics, 2026. Its equations are not available to us; this is the rule we implement:

1. Importance. Every filter f of layer l gets a continuous empirical Fisher F_lf: the running mean,
   over training steps, of the squared gradient of the generator's adversarial loss with respect to
   the filter's parameters (kernel slice, bias, and the downstream style-affine rows that scale it).
   It reuses the step's gradients, so tracking costs no extra backward pass (see fisher.py for what
   a mini-batch gradient estimates).
2. Cumulative-importance weight. Within each layer the importance is normalised to shares
   s_lf = F_lf / sum_g F_lg. Sorting ascending, the layer's pruning ratio r_l is the largest k/n_l
   with sum of the k smallest shares <= tau, capped at ``max_layer_ratio``. A layer whose importance
   is spread out (general, low-level filters all matter a little) has small shares everywhere only
   when it is large, so few filters fit under tau and it keeps nearly all of them; a layer dominated
   by a few filters (source-specific detail the target does not use) sheds the rest. Unlike one
   global threshold (RICK), a layer whose filters are uniformly weak in absolute terms is not wiped
   out: the decision is relative to the layer.
3. Dynamics. Ratios and masks are re-decided every ``interval`` steps from the current estimate;
   a pruned filter keeps the importance it had when pruned and is revived (restored to its values at
   pruning time) when a later decision no longer selects it (``revive``). Optionally the top filters
   holding ``freeze_share`` of a layer's importance are frozen, and a global ``budget`` caps the
   fraction of all filters pruned (lowest shares first).
With ``ratio_rule="global_percentile"``, ``fisher="on_demand"``, ``permanent=True``, ``revive=False``
it takes exactly RICK's decisions (tested).
"""
from __future__ import annotations

from dataclasses import dataclass

from fsgen_hub.methods.base import register_method
from fsgen_hub.methods.pruning import FilterPruningMethod, PruningConfig


@dataclass
class DAPConfig(PruningConfig):
    pass


class DAP(FilterPruningMethod):
    description = "Fisher-guided dynamic filter pruning: per-layer ratios from cumulative importance, re-decided during training"
    paper = "A dynamic pruning approach for cross-domain few-shot image generation, Journal of Graphics 2026"


register_method("dap", DAPConfig, DAP)
