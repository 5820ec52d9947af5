"""CDC (Ojha et al., "Few-shot Image Generation via Cross-domain Correspondence", CVPR 2021).

Two parts, as in the paper:

1. Cross-domain distance consistency. For a batch of ``feature_batch`` latents, the frozen source G and
   the adapted G each give intermediate features. For every anchor i, one generator layer is drawn at
   random; the cosine similarities of i's feature to the other latents' features form a vector that a
   softmax turns into a distribution. The loss is ``kl_weight`` · KL(p_source ‖ p_adapted), averaged
   over the entries: the adapted images keep the source's relative similarities (diversity).
2. Anchor-based patch discrimination. ``anchor_count`` fixed latents define small anchor regions
   (z_anchor + N(0, ``anchor_std``²)). Every ``subspace_freq``-th step samples from them and uses the
   full-image discriminator; the other steps sample freely and judge only patches: a small head on one
   intermediate D feature map (chosen at random among ``patch_layers`` candidates) gives one logit per
   location, so images far from the shots are only asked to look locally realistic.

Defaults follow the paper's code: kl_weight 1000, feature_batch 4, subspace_freq 4, anchor_std 0.05.
The patch heads are method parameters trained with D; they are not part of the exported discriminator.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from fsgen_hub.errors import FsgenError
from fsgen_hub.methods.base import AdaptationMethod, MethodConfig, register_method


@dataclass
class CDCConfig(MethodConfig):
    kl_weight: float = field(default=1000.0, metadata={"help": "weight of the distance-consistency KL term"})
    feature_batch: int = field(default=4, metadata={"help": "latents whose pairwise similarities are kept (≥ 3)"})
    subspace_freq: int = field(default=4, metadata={"help": "every k-th step samples anchor regions and uses the image-level D"})
    anchor_count: int = field(default=10, metadata={"help": "number of anchor latents (the paper uses the number of shots)"})
    anchor_std: float = field(default=0.05, metadata={"help": "std of the Gaussian around each anchor latent"})
    patch_layers: int = field(default=3, metadata={"help": "how many intermediate D feature maps can host the patch head"})
    seed: int = field(default=0, metadata={"help": "seed of the anchor latents"})


class CDC(AdaptationMethod):
    description = "cross-domain distance consistency to the source G + anchor-based patch-level discriminator"
    paper = "Ojha et al., CVPR 2021 (arXiv:2104.06820)"

    def prepare(self, ctx) -> None:
        cfg = self.config
        if cfg.feature_batch < 3:
            raise FsgenError("cdc: feature_batch must be at least 3 (each anchor needs two others to compare)")
        if cfg.subspace_freq < 1:
            raise FsgenError("cdc: subspace_freq must be ≥ 1")
        G, D = ctx.unwrap(ctx.G), ctx.unwrap(ctx.D)
        self.source_G = ctx.frozen_copy("source_G", G)
        self.anchors = G.make_latents(cfg.anchor_count, seed=cfg.seed).reshape(cfg.anchor_count, -1).to(ctx.device)
        with torch.no_grad():
            _, feats = D(torch.zeros(1, 3, D.resolution, D.resolution, device=ctx.device), return_features=True)
        # intermediate maps with spatial extent, excluding the first (pixels) and the 4x4 end of D
        candidates = [(k, v.shape[1]) for k, v in feats.items() if v.ndim == 4 and 4 < v.shape[-1] < D.resolution]
        if not candidates:
            raise FsgenError("cdc: the discriminator has no intermediate feature map for the patch head")
        self.patch_keys = [k for k, _ in candidates[-cfg.patch_layers:]]
        channels = dict(candidates)
        torch.manual_seed(cfg.seed)
        self.heads = nn.ModuleDict({
            k.replace(".", "_"): nn.Sequential(nn.Conv2d(channels[k], channels[k], 3, padding=1), nn.LeakyReLU(0.2),
                                               nn.Conv2d(channels[k], 1, 1))
            for k in self.patch_keys
        }).to(ctx.device)
        self._patch_choice: dict[int, str] = {}

    def discriminator_parameters(self, ctx):
        return [p for p in ctx.D.parameters() if p.requires_grad] + list(self.heads.parameters())

    def _anchor_step(self, step: int) -> bool:
        return step % self.config.subspace_freq == 0

    def sample_latents(self, ctx, batch_size):
        if self._anchor_step(ctx.step):
            index = torch.randint(len(self.anchors), (batch_size,), device=ctx.device)
            return self.anchors[index] + self.config.anchor_std * torch.randn_like(self.anchors[index])
        return torch.randn(batch_size, ctx.unwrap(ctx.G).z_dim, device=ctx.device)

    def discriminate(self, ctx, images, *, real, step):
        logits, feats = ctx.D(images, return_features=True)
        if self._anchor_step(step):
            return logits, feats
        if step not in self._patch_choice:  # one layer per step, shared by the real, fake and G passes
            self._patch_choice = {step: self.patch_keys[int(torch.randint(len(self.patch_keys), ()))]}
        key = self._patch_choice[step]
        patch = self.heads[key.replace(".", "_")](feats[key])
        return patch.reshape(-1, 1), feats

    def generator_loss(self, ctx, batch):
        cfg = self.config
        G = ctx.G
        z = torch.randn(cfg.feature_batch, ctx.unwrap(G).z_dim, device=ctx.device)
        with torch.no_grad():
            _, source_feats = self.source_G(z, return_features=True)
        _, target_feats = G(z, return_features=True)
        keys = list(source_feats)
        n = cfg.feature_batch
        off_diagonal = ~torch.eye(n, dtype=torch.bool, device=ctx.device)
        layer_of_anchor = torch.randint(len(keys), (n,))
        source_sim, target_sim = [], []
        for i in range(n):
            key = keys[int(layer_of_anchor[i])]
            s = F.cosine_similarity(source_feats[key][i].reshape(1, -1), source_feats[key].reshape(n, -1))
            t = F.cosine_similarity(target_feats[key][i].reshape(1, -1), target_feats[key].reshape(n, -1))
            source_sim.append(s[off_diagonal[i]])
            target_sim.append(t[off_diagonal[i]])
        log_p_source = F.log_softmax(torch.stack(source_sim), dim=1)
        log_p_target = F.log_softmax(torch.stack(target_sim), dim=1)
        # KL(p_source ‖ p_adapted) averaged over all entries, as the paper's code (KLDivLoss, reduction "mean")
        kl = (log_p_source.exp() * (log_p_source - log_p_target)).mean()
        return {"loss_cdc": cfg.kl_weight * kl}

    def after_backward(self, ctx, phase):
        if phase == "D" and ctx.accelerator.num_processes > 1:  # heads live outside D: average their gradients too
            for p in self.heads.parameters():
                if p.grad is not None:
                    torch.distributed.all_reduce(p.grad)
                    p.grad /= ctx.accelerator.num_processes

    def state_dict(self):
        return {"heads": {k: v.cpu() for k, v in self.heads.state_dict().items()}}

    def load_state_dict(self, state):
        self.heads.load_state_dict(state["heads"])


register_method("cdc", CDCConfig, CDC)
