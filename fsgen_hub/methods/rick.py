"""RICK (Zhao et al., "Exploring Incompatible Knowledge Transfer in Few-shot Image Generation", CVPR 2023).

Filter importance is estimated on demand (N single-image passes through the EMA generator with fixed
noise) every 50 steps; one pair of global percentile thresholds over all filters decides: above the
high percentile → frozen, at or below the low percentile → pruned (zeroed, permanently: the union
over decisions), fine-tuned otherwise. A D-only warm-up precedes the first decision. The
percentiles are ours (RICK's repository sets them per experiment): low 5, high 75.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from fsgen_hub.methods.base import register_method
from fsgen_hub.methods.pruning import FilterPruningMethod, PruningConfig


@dataclass
class RICKConfig(PruningConfig):
    fisher: str = field(default="on_demand", metadata={"help": "on_demand: RICK's single-image passes; continuous also allowed"})
    ratio_rule: str = field(default="global_percentile", metadata={"help": "RICK uses one global pair of percentiles"})
    permanent: bool = field(default=True, metadata={"help": "pruning is permanent (union over decisions)"})
    revive: bool = field(default=False, metadata={"help": "RICK never revives a pruned filter"})
    warmup_steps: int = field(default=10, metadata={"help": "steps that train D only before the first decision"})


class RICK(FilterPruningMethod):
    description = "global-percentile Fisher thresholds: freeze important filters, prune incompatible ones, every 50 steps"
    paper = "Zhao et al., CVPR 2023 (arXiv:2304.07574)"


register_method("rick", RICKConfig, RICK)
