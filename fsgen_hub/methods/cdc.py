"""CDC (Ojha et al., "Few-shot Image Generation via Cross-domain Correspondence", CVPR 2021).

Two parts, as the official code runs them (github.com/utkarshojha/few-shot-gan-adaptation, ``train.py``;
our ``cdc_loss_32`` fixture checks the loss, its gradients and the patch logits against that code):

1. Cross-domain distance consistency. ``feature_batch`` (4) latents go through the frozen source G and
   the adapted G, each with its own random noise maps. For anchor i one generator layer l_i is drawn
   among the outputs of the hidden convs after the first (StyleGAN2: every StyledConv of ``convs``,
   never the 4x4 ``conv1``); the cosine similarities of i's whole flattened map to the other latents'
   maps at l_i, softmaxed (no temperature), give p_source and p_adapted. The loss is ``kl_weight``
   (1000) · KLDivLoss(log p_adapted, p_source) with reduction "mean" (the mean over all N·(N-1)
   entries, not "batchmean"), added to G's adversarial loss.
2. Anchor-based patch discrimination. ``anchor_count`` fixed latents (the number of shots) define
   anchor regions z_anchor + N(0, ``anchor_std``² = 0.1²). Every ``subspace_freq``-th (4th) step samples
   from them and uses the image-level D; the other steps sample freely and judge patches: a head (3x3
   equalized conv to one channel + bias, leaky ReLU 0.2 · √2) on an intermediate D map gives one logit
   per location. The map is the first of CDC's four candidates (``patch_layers`` = its ``highp``, 1):
   the first inner ResBlock conv output at most min(32, resolution/2) px wide (256 px: D.convs[3].conv2).

Recipe (train.py defaults and README command): everything in G and D trains; Adam lr 0.002, betas
(0, 0.99) with the lazy-regularisation correction; batch 4; R1 γ 10 every 16 steps; path-length
regularisation 2 every 4 steps; style mixing 0.9 on the free (patch-level) steps; no augmentation; EMA
decay 0.5^(32/10,000) per step; 5,002 iterations. The patch heads are method parameters trained with D;
they are not part of the exported discriminator.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from fsgen_hub.methods.base import AdaptationMethod, MethodConfig, register_method
from fsgen_hub.models.ops import EqualConv2d, FusedLeakyReLU
from fsgen_hub.utils.errors import FsgenError


def distance_consistency(source_feats: list[torch.Tensor], target_feats: list[torch.Tensor],
                         layer_of_anchor: list[int]) -> dict[str, torch.Tensor]:
    """CDC's cross-domain distance consistency for N latents. ``*_feats[l]`` is layer l's map (N, ...)
    for every latent; anchor i compares its map at layer ``layer_of_anchor[i]`` with the other latents'
    (j != i, increasing j). Returns the (N, N-1) cosine similarities ``sim_*``, their row softmax
    ``dist_*`` and ``kl`` = mean over entries of p_s (log p_s - log p_t) (KLDivLoss, reduction "mean")."""
    n = len(layer_of_anchor)
    others = ~torch.eye(n, dtype=torch.bool)
    rows = {"source": [], "target": []}
    for i, layer in enumerate(layer_of_anchor):
        for name, feats in (("source", source_feats), ("target", target_feats)):
            flat = feats[layer].reshape(n, -1)
            rows[name].append(F.cosine_similarity(flat[i : i + 1], flat[others[i].to(flat.device)], dim=1))
    sim_s, sim_t = torch.stack(rows["source"]), torch.stack(rows["target"])
    dist_s, dist_t = F.softmax(sim_s, dim=1), F.softmax(sim_t, dim=1)
    # nn.KLDivLoss() with its default reduction "mean": the mean over all entries (torch warns that this
    # default will become "batchmean", hence the explicit formula)
    kl = (dist_s * (torch.log(dist_s) - torch.log(dist_t))).mean()
    return {"sim_source": sim_s, "sim_target": sim_t, "dist_source": dist_s, "dist_target": dist_t, "kl": kl}


def patch_candidates(features: dict[str, torch.Tensor], plain_keys, resolution: int) -> list[str]:
    """CDC's patch-level maps: the inner maps of D's blocks (those ``return_features="all"`` adds; every
    map when there are none) at most min(32, resolution/2) px wide, in forward order, four at most."""
    inner = [k for k in features if k not in plain_keys] or list(plain_keys)
    limit = min(32, resolution // 2)
    return [k for k in inner if features[k].ndim == 4 and features[k].shape[-1] <= limit][:4]


def patch_head(channels: int) -> nn.Sequential:
    """CDC's ``Extra`` head: a 3x3 equalized conv to one channel, then bias + leaky ReLU 0.2 · √2."""
    return nn.Sequential(EqualConv2d(channels, 1, 3, padding=1, bias=False), FusedLeakyReLU(1))


@dataclass
class CDCConfig(MethodConfig):
    kl_weight: float = field(default=1000.0, metadata={"help": "weight of the distance-consistency KL term"})
    feature_batch: int = field(default=4, metadata={"help": "latents whose pairwise similarities are kept (≥ 3)"})
    subspace_freq: int = field(default=4, metadata={"help": "every k-th step samples anchor regions and uses the image-level D"})
    anchor_count: int = field(default=10, metadata={"help": "number of anchor latents (the paper uses the number of shots)"})
    anchor_std: float = field(default=0.1, metadata={"help": "std of the Gaussian around each anchor latent (train.py subspace_std 0.1)"})
    patch_layers: int = field(default=1, metadata={"help": "how many of CDC's four patch-level D maps the head picks from at random (its highp, 1)"})
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
            probe = torch.zeros(1, 3, D.resolution, D.resolution, device=ctx.device)
            plain = list(D(probe, return_features=True)[1])
            feats = D(probe, return_features="all")[1]
        candidates = patch_candidates(feats, plain, D.resolution)
        if not candidates:
            raise FsgenError("cdc: the discriminator has no intermediate feature map for the patch head")
        self.patch_keys = candidates[: max(1, cfg.patch_layers)]
        torch.manual_seed(cfg.seed)
        self.heads = nn.ModuleDict({k.replace(".", "_"): patch_head(feats[k].shape[1]) for k in self.patch_keys}).to(ctx.device)
        self._patch_choice: dict[int, str] = {}

    def discriminator_parameters(self, ctx):
        return [p for p in ctx.D.parameters() if p.requires_grad] + list(self.heads.parameters())

    def _anchor_step(self, step: int) -> bool:
        return step % self.config.subspace_freq == 0

    def allow_style_mixing(self, ctx, step):
        return not self._anchor_step(step)  # CDC samples anchor regions without mixing

    def sample_latents(self, ctx, batch_size):
        if self._anchor_step(ctx.step):
            index = torch.randint(len(self.anchors), (batch_size,), device=ctx.device)
            return self.anchors[index] + self.config.anchor_std * torch.randn_like(self.anchors[index])
        return torch.randn(batch_size, ctx.unwrap(ctx.G).z_dim, device=ctx.device)

    def discriminate(self, ctx, images, *, real, step):
        if self._anchor_step(step):
            return ctx.D(images, return_features=True)
        logits, feats = ctx.D(images, return_features="all")
        if step not in self._patch_choice:  # one layer per step, shared by the real, fake and G passes
            self._patch_choice = {step: self.patch_keys[int(torch.randint(len(self.patch_keys), ()))]}
        key = self._patch_choice[step]
        patch = self.heads[key.replace(".", "_")](feats[key])
        return patch.reshape(-1, 1), feats

    def generator_loss(self, ctx, batch):
        cfg = self.config
        G = ctx.G
        z = torch.randn(cfg.feature_batch, ctx.unwrap(G).z_dim, device=ctx.device)
        with torch.no_grad():  # the source draws its own noise maps, as CDC's two random-noise calls do
            _, source_feats = self.source_G(z, return_features=True)
        _, target_feats = G(z, return_features=True)
        # candidate layers: every hidden conv output after the first (CDC: feat_ind in 1..n_latent-2)
        source_list, target_list = list(source_feats.values()), list(target_feats.values())
        layers = torch.randint(1, len(source_list), (cfg.feature_batch,)).tolist()
        kl = distance_consistency(source_list, target_list, layers)["kl"]
        return {"loss_cdc": cfg.kl_weight * kl}

    def after_backward(self, ctx, phase):
        if phase == "D":  # heads live outside D: average their gradients too
            ctx.sync_gradients(self.heads.parameters())

    def state_dict(self):
        return {"heads": {k: v.cpu() for k, v in self.heads.state_dict().items()}}

    def load_state_dict(self, state):
        self.heads.load_state_dict(state["heads"])


register_method("cdc", CDCConfig, CDC)
