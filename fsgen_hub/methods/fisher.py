"""Fisher information of generator filters and parameters, shared by EWC, RICK and DAP.

A filter's parameters are its kernel slice, the parameters coupled to it (bias, BN affine) and the
downstream style-affine rows that scale its output (``FilterLayer.consumers`` along axis 0, the
RICK convention of counting the modulation with the filter). Its empirical Fisher is the sum, over
those entries, of the squared gradient of the generator's adversarial loss.

Two estimators:
- ``per_sample_filter_fisher``: RICK's on-demand protocol — N single-image passes (fixed latents and
  noise) averaging squared per-sample gradients; one extra backward per sample.
- ``ContinuousFisher``: reuses the gradients the training step already computed (no extra pass).
  It averages the squared *mini-batch* gradient over steps (cumulative mean, or an EMA). With batch
  size 1 this is exactly the per-sample empirical Fisher of the samples seen; with batch size B it
  is E[(mean of B per-sample gradients)^2] = (1/B)·Fisher + (1 - 1/B)·(mean gradient)^2, a scaled
  and smoothed estimate with the same ranking tendencies — what DAP needs to order filters.
"""
from __future__ import annotations

from collections.abc import Callable

import torch

from fsgen_hub.models.base import FilterLayer


def _params(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return dict(model.named_parameters())


def filter_sq_grads(model: torch.nn.Module, layers: list[FilterLayer], include_consumers: bool = True) -> list[torch.Tensor]:
    """Per-filter sum of squared gradients currently in ``.grad`` (zeros where no gradient)."""
    params = _params(model)
    out = []
    for layer in layers:
        total = torch.zeros(layer.num_filters, device=layer.weight.device)
        if layer.weight.grad is not None:
            g = layer.weight.grad.detach().float().pow(2)
            total += g.transpose(0, layer.out_dim).reshape(layer.num_filters, -1).sum(1)
        entries = list(layer.coupled)
        if include_consumers:
            entries += [(name, axis) for name, axis in layer.consumers if axis == 0 and "modulation" in name]
        for name, axis in entries:
            p = params.get(name)
            if p is not None and p.grad is not None:
                g = p.grad.detach().float().pow(2)
                total += g.transpose(0, axis).reshape(layer.num_filters, -1).sum(1)
        out.append(total)
    return out


class ContinuousFisher:
    """Running per-filter Fisher from the training step's own gradients (``mode``: "mean" or "ema")."""

    def __init__(self, num_filters: list[int], mode: str = "mean", decay: float = 0.99):
        if mode not in ("mean", "ema"):
            raise ValueError("fisher mode must be 'mean' or 'ema'")
        self.mode, self.decay = mode, decay
        self.values = [torch.zeros(n) for n in num_filters]
        self.count = 0

    def update(self, sq_grads: list[torch.Tensor]) -> None:
        self.count += 1
        for i, g in enumerate(sq_grads):
            g = g.detach().cpu()
            if self.mode == "mean":
                self.values[i] += (g - self.values[i]) / self.count
            else:
                self.values[i] = self.decay * self.values[i] + (1 - self.decay) * g if self.count > 1 else g.clone()

    def state_dict(self) -> dict:
        return {"values": [v.clone() for v in self.values], "count": self.count}

    def load_state_dict(self, state: dict) -> None:
        self.values = [v.clone() for v in state["values"]]
        self.count = int(state["count"])


def per_sample_filter_fisher(
    G: torch.nn.Module,
    loss_fn: Callable[[torch.Tensor], torch.Tensor],
    latents: torch.Tensor,
    layers: list[FilterLayer] | None = None,
    noise_mode: str = "const",
) -> list[torch.Tensor]:
    """Mean over ``latents`` of per-sample squared gradients per filter (one backward per sample)."""
    layers = layers or G.filter_layers()
    totals = [torch.zeros(layer.num_filters) for layer in layers]
    for z in latents:
        G.zero_grad(set_to_none=True)
        loss_fn(G(z[None].to(next(G.parameters()).device), noise_mode=noise_mode)).backward()
        for t, g in zip(totals, filter_sq_grads(G, layers)):
            t += g.cpu()
    G.zero_grad(set_to_none=True)
    return [t / len(latents) for t in totals]


def per_parameter_fisher(G: torch.nn.Module, loss_fn, latents: torch.Tensor, noise_mode: str = "const") -> dict[str, torch.Tensor]:
    """EWC's diagonal Fisher: mean over samples of squared per-sample gradients of every parameter."""
    fisher = {name: torch.zeros_like(p) for name, p in G.named_parameters() if p.requires_grad}
    for z in latents:
        G.zero_grad(set_to_none=True)
        loss_fn(G(z[None].to(next(G.parameters()).device), noise_mode=noise_mode)).backward()
        for name, p in G.named_parameters():
            if p.grad is not None and name in fisher:
                fisher[name] += p.grad.detach().pow(2)
    G.zero_grad(set_to_none=True)
    return {name: f / len(latents) for name, f in fisher.items()}


# ----------------------------------------------------------------------------- RICK's estimator
def _grads(loss: torch.Tensor, named: list[tuple[str, torch.nn.Parameter]], retain: bool) -> dict[str, torch.Tensor]:
    grads = torch.autograd.grad(loss, [p for _, p in named], retain_graph=retain, allow_unused=True)
    return {name: g for (name, _), g in zip(named, grads) if g is not None}


def adversarial_parameter_fisher(
    G: torch.nn.Module,
    D: torch.nn.Module,
    latents: torch.Tensor,
    reals: torch.Tensor,
    noises: list[list[torch.Tensor]] | None = None,
    noise_mode: str = "random",
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """RICK's per-parameter empirical Fisher of G and of D, one sample at a time.

    Sample j: fake = G(latents[j]) (with ``noises[j]`` when given, else ``noise_mode``); G's Fisher is the
    squared gradient of softplus(-D(fake)) w.r.t. G's parameters, D's the squared gradient of
    softplus(-D(reals[j])) + softplus(D(fake)) w.r.t. D's parameters; both averaged over the samples.
    (RICK divides the sum by num_fisher_img * batch, i.e. twice the sample count at its batch of 2: a
    constant factor that changes no decision.) Runs in eval mode with gradients enabled on every
    parameter, as RICK does on its EMA copies; both models come back as they were.
    """
    import torch.nn.functional as F

    device = next(G.parameters()).device
    states = [(m, m.training, {n: p.requires_grad for n, p in m.named_parameters()}) for m in (G, D)]
    G.eval(), D.eval()
    G.requires_grad_(True), D.requires_grad_(True)
    g_named, d_named = list(G.named_parameters()), list(D.named_parameters())
    fisher_g = {n: torch.zeros_like(p, dtype=torch.float32) for n, p in g_named}
    fisher_d = {n: torch.zeros_like(p, dtype=torch.float32) for n, p in d_named}
    try:
        with torch.enable_grad():
            for j in range(len(latents)):
                z = latents[j].reshape(1, -1).to(device)
                noise = noises[j] if noises is not None else None
                fake = G(z, noise=noise) if noise is not None else G(z, noise_mode=noise_mode)
                fake_pred, real_pred = D(fake), D(reals[j : j + 1].to(device))
                g_loss = F.softplus(-fake_pred).mean()
                d_loss = F.softplus(-real_pred).mean() + F.softplus(fake_pred).mean()
                for name, g in _grads(g_loss, g_named, retain=True).items():
                    fisher_g[name] += g.detach().float().pow(2)
                for name, g in _grads(d_loss, d_named, retain=False).items():
                    fisher_d[name] += g.detach().float().pow(2)
    finally:
        for model, training, flags in states:
            model.train(training)
            for n, p in model.named_parameters():
                p.requires_grad_(flags[n])
    count = max(1, len(latents))
    return {n: f / count for n, f in fisher_g.items()}, {n: f / count for n, f in fisher_d.items()}


def unit_scores(fisher: dict[str, torch.Tensor], units) -> list[torch.Tensor]:
    """Per-filter score of each FisherUnit (float64): the mean over its entries of the per-filter mean
    of the entry's Fisher (RICK: kernel mean and activation-bias value averaged, style-affine row mean
    and bias averaged). Entries without Fisher (frozen parameters) count as zero."""
    scores = []
    for unit in units:
        parts = []
        for name, axis in unit.entries:
            f = fisher.get(name)
            if f is None:
                continue
            f = f.detach().double()
            parts.append(f.transpose(0, axis).reshape(f.shape[axis], -1).mean(1) if f.ndim > 1 else f)
        if not parts:
            raise ValueError(f"no Fisher for any entry of {unit.name}")
        scores.append(torch.stack(parts).mean(0).cpu())
    return scores


def squared_gradients(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The squared gradients currently in ``.grad``, by parameter name (a continuous Fisher sample)."""
    return {n: p.grad.detach().float().pow(2) for n, p in model.named_parameters() if p.grad is not None}
