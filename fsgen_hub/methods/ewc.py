"""EWC for GANs (Li et al., "Few-shot Image Generation with Elastic Weight Consolidation", NeurIPS 2020).

Before adapting, the diagonal empirical Fisher of every generator weight is estimated on the source:
F = mean over N generated images of (∂L/∂θ)², with L the generator's adversarial loss under the
source discriminator (the paper's likelihood proxy), one single-image backward each. Training then adds
λ·Σ F·(θ − θ_src)² to the generator loss, so weights the source relies on move least. The paper's λ is
of the order 5e8 for StyleGAN (Fisher values are tiny); their scale depends on the model, so λ is a knob.
A source without a discriminator (e.g. the DigiFace DCGAN) gets Fisher from a freshly initialised D:
the run warns, since the weighting then reflects an untrained critic.

Recipe (``fsgen_hub.methods.recipes``): the authors released no code. The few-shot papers that compare
with EWC (CDC, RICK, AdAM) run it on rosinality's StyleGAN2 trainer, so it gets that trainer's settings:
everything trains, batch 4, R1 γ 10 every 16 steps, path length 2 every 4, style mixing 0.9, lazy-
regularisation Adam, no augmentation, EMA half-life 312.5 steps. Sony's NNabla re-implementation
(nnabla-examples ``image-generation/stylegan2-ewc``) estimates Fisher over 100 samples of the
log-likelihood log σ(D(G(z))), restricted to conv weights, and averages (not sums) the penalty with
λ = 100; our sum with λ 5e8 follows the paper's scale.
"""
from __future__ import annotations

import copy
import logging
from dataclasses import dataclass, field

import torch

from fsgen_hub.losses import g_nonsaturating_loss
from fsgen_hub.methods.base import AdaptationMethod, MethodConfig, register_method
from fsgen_hub.methods.fisher import per_parameter_fisher

logger = logging.getLogger(__name__)


@dataclass
class EWCConfig(MethodConfig):
    ewc_lambda: float = field(default=5e8, metadata={"help": "weight λ of the penalty λ·Σ F(θ−θ_src)²"})
    fisher_samples: int = field(default=64, metadata={"help": "single-image passes used to estimate the source Fisher"})
    fisher_seed: int = field(default=0, metadata={"help": "seed of the latents used for the Fisher estimate"})


class EWC(AdaptationMethod):
    description = "fine-tune with a Fisher-weighted L2 pull towards the source generator weights"
    paper = "Li et al., NeurIPS 2020 (arXiv:2012.02780)"

    def prepare(self, ctx) -> None:
        G, D = ctx.unwrap(ctx.G), ctx.unwrap(ctx.D)
        if ctx.discriminator_origin == "fresh":
            logger.warning("ewc: the source has no discriminator, Fisher comes from a freshly initialised one")
        # eval-mode copies: Fisher passes must not touch batch-norm running statistics of the models
        G_probe, D_probe = copy.deepcopy(G).eval(), copy.deepcopy(D).eval().requires_grad_(False)
        G_probe.requires_grad_(True)
        latents = G.make_latents(self.config.fisher_samples, seed=self.config.fisher_seed)
        fisher = per_parameter_fisher(G_probe, lambda img: g_nonsaturating_loss(D_probe(img)), latents)
        self.fisher = {name: f.to(ctx.device) for name, f in fisher.items()}
        self.source = {name: p.detach().clone() for name, p in G.named_parameters() if name in self.fisher}

    def generator_loss(self, ctx, batch):
        penalty = torch.zeros((), device=ctx.device)
        for name, p in ctx.unwrap(ctx.G).named_parameters():
            if name in self.fisher:
                penalty = penalty + (self.fisher[name] * (p - self.source[name]).pow(2)).sum()
        return {"loss_ewc": self.config.ewc_lambda * penalty}

    def state_dict(self):
        return {"fisher": {k: v.cpu() for k, v in self.fisher.items()}, "source": {k: v.cpu() for k, v in self.source.items()}}

    def load_state_dict(self, state):
        device = next(iter(self.fisher.values())).device if getattr(self, "fisher", None) else "cpu"
        self.fisher = {k: v.to(device) for k, v in state["fisher"].items()}
        self.source = {k: v.to(device) for k, v in state["source"].items()}


register_method("ewc", EWCConfig, EWC)
