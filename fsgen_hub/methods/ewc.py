"""EWC for GANs (Li et al., "Few-shot Image Generation with Elastic Weight Consolidation", NeurIPS 2020).

Before adapting, the diagonal empirical Fisher of every generator weight is estimated on the source:
F = mean over N generated images of (∂L/∂θ)², with L the generator's adversarial loss under the
source discriminator (the paper's likelihood proxy), one single-image backward each. Training then adds
λ·Σ F·(θ − θ_src)² to the generator loss, so weights the source relies on move least.

λ is not transferable between models: F's scale depends on the parameterisation, resolution and how F is
averaged. The paper's λ (of the order 5e8, for its 256 px StyleGAN) freezes our generators outright: on
``fsgen/stylegan2-faces64`` F has median 3.9e-7 and 99th percentile 1e-4 (32 samples), so 5e8 holds a
median weight with a spring of 2·λ·F ≈ 400 against adversarial gradients of ~4e-4, and a 1,000-step run
to sketches ended where it started (correspondence 1.000, the source's SWD). The default λ = 5e2 was
chosen on faces64 → babies (the tuning pair, README) by a rule fixed before the runs: the strongest λ
whose SWD at step 1,000 is within 10 % of fine-tuning's (73.9), else the lowest SWD. 5e3 reached 92.7,
5e4 trailed it at step 200 and was stopped, 5e2 reached 82.2 (just outside 10 %): the lowest, so 5e2.
A source without a discriminator (e.g. the DigiFace DCGAN) gets Fisher from a freshly initialised D:
the run warns, since the weighting then reflects an untrained critic.

Recipe (``fsgen_hub.methods.recipes``): the authors released no code. The few-shot papers that compare
with EWC (CDC, RICK, AdAM) run it on rosinality's StyleGAN2 trainer, so it gets that trainer's settings:
everything trains, batch 4, R1 γ 10 every 16 steps, path length 2 every 4, style mixing 0.9, lazy-
regularisation Adam, no augmentation, EMA half-life 312.5 steps. (Sony's NNabla re-implementation,
nnabla-examples ``image-generation/stylegan2-ewc``, averages raw gradients of log σ(D(G(z))) over 100
passes rather than squaring them, and averages the penalty per layer with λ = 100: not the paper's
estimator, so its λ does not carry over either.)
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
    ewc_lambda: float = field(default=5e2, metadata={"help": "weight λ of the penalty λ·Σ F(θ−θ_src)² (the paper's 5e8 freezes our models, see the module docstring)"})
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
