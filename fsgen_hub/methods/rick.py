"""RICK (Zhao et al., "Exploring Incompatible Knowledge Transfer in Few-shot Image Generation", CVPR 2023).

The recipe, as the official code runs it (github.com/yunqing-me/RICK, ``train_dynamic_update_prune.py``
and its README commands for FFHQ → Babies; our ``rick_fisher_32`` fixture checks the Fisher and the
decisions against that code):

* **What trains.** G: only the synthesis convolutions (``'convs' in name``: kernels, style affines,
  noise strengths, activation biases); the mapping network, the constant input, the 4x4 ``conv1`` and
  every toRGB stay frozen (``g_groups=synthesis``). D: every block after fromRGB plus the final layers
  (``d_groups=blocks,final``).
* **Warm-up.** The first 250 of 1,750 iterations train only D's final layers (``'final' in name``);
  G does not move (``warmup_steps=250``, ``warmup_d_groups=final``).
* **Fisher.** At the end of the warm-up and every ``fisher_freq`` = 50 iterations after it, on the
  EMA copies g_ema and d_ema: 5 fixed latents (the same files every time), one image each with fresh
  noise maps and one real image each; squared gradients of the non-saturating G loss (G) and of the
  logistic D loss (D), averaged. RICK divides by num_fisher_img·batch = 10, half the mean: a constant
  that changes no decision; we divide by the sample count.
* **Scores and decisions.** G conv kernels per output channel, G style affines per input channel (row
  mean of the weight and the bias, averaged), D ResBlock convs per output channel (kernel mean and
  activation bias averaged) and skips (kernel mean); three pools (G convs, G affines, D convs with
  skips), each with ``cutline`` = the ``fisher_quantile``-th and ``pruneline`` = the
  ``prune_quantile``-th percentile (linear interpolation). Freeze ``score > cutline`` (gradients
  zeroed), prune ``score <= pruneline`` (``<`` for D skips; weights and gradients zeroed). Frozen sets
  are replaced at every estimate, pruned sets merged (a pruned filter stays pruned). Babies:
  fisher_quantile 40 (freeze the top 60 %), prune_quantile 0.1 (AFHQ-Cat: 85 and 0.075).
* **Optimisation.** Adam, lr 0.002 and betas (0, 0.99), both with StyleGAN2's lazy-regularisation
  correction (G: ×4/5, D: ×16/17), batch 2, R1 γ = 10 every 16 steps, path-length regularisation
  weight 2 every 4 steps (path batch = batch // 2), style mixing 0.9, no augmentation (``--augment``
  is off by default there), EMA decay 0.5^(32/10,000) per step (a half-life of 312.5 steps), and
  the best g_ema by FID on the evaluation set kept (``--select-best`` here; it uses the evaluation set).
* **Differences.** R1 is added to the D loss of its step rather than taking a separate optimiser step;
  the real image of each Fisher pass is drawn at random from the shots; pruned filters are held at zero
  in the EMA generator too (RICK lets them decay there). On a DCGAN (no style space) the recipe keeps
  batch, groups, warm-up, EMA and no augmentation, and drops what is StyleGAN2's own (R1 10 with lazy
  regularisation, path length, style mixing). The recipe itself is ``fsgen_hub.methods.recipes``.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from fsgen_hub.methods.base import register_method
from fsgen_hub.methods.pruning import FilterPruningMethod, PruningConfig


@dataclass
class RICKConfig(PruningConfig):
    fisher: str = field(default="ema", metadata={"help": "ema: RICK's single-image passes on the EMA copies of G and D"})
    ratio_rule: str = field(default="global_percentile", metadata={"help": "RICK pools the filters of each kind and thresholds them at percentiles"})
    fisher_quantile: float = field(default=40.0, metadata={"help": "freeze filters above this percentile of their pool (README: Babies 40, AFHQ-Cat 85)"})
    prune_quantile: float = field(default=0.1, metadata={"help": "prune filters at or below this percentile (README: Babies 0.1, AFHQ-Cat 0.075)"})
    permanent: bool = field(default=True, metadata={"help": "pruned sets are merged over estimates (RICK's zero_idx_merge)"})
    revive: bool = field(default=False, metadata={"help": "RICK never revives a pruned filter"})


class RICK(FilterPruningMethod):
    description = "RICK: Fisher on the EMA copies every 50 steps; freeze the top 60% of G/D filters, prune the bottom 0.1%"
    paper = "Zhao et al., CVPR 2023 (arXiv:2304.07574)"


register_method("rick", RICKConfig, RICK)
