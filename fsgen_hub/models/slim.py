"""Slimmed export: physically remove pruned filters and the input channels that read them."""
from __future__ import annotations

import copy

import torch

from fsgen_hub.utils.errors import FsgenError


def slim_generator(G: torch.nn.Module, pruned: dict[str, torch.Tensor]) -> torch.nn.Module:
    """A smaller generator of the same class computing the masked generator's images.

    ``pruned`` maps filter-layer names to boolean masks. Every parameter/buffer indexed by a pruned
    filter (its kernel, coupled bias/BN, downstream input slices and style-affine rows) is cut along
    that axis; the new widths go into the config field the model names (``G.filter_widths_field``).
    """
    layers = G.filter_layers()
    keep: dict[str, dict[int, torch.Tensor]] = {}
    widths = []
    weight_names = {id(p): n for n, p in G.named_parameters()}
    for layer in layers:
        mask = pruned.get(layer.name, torch.zeros(layer.num_filters, dtype=torch.bool)).cpu()
        kept = torch.nonzero(~mask).flatten()
        if kept.numel() == 0:
            raise FsgenError(f"layer {layer.name} has every filter pruned: nothing would flow through it")
        widths.append(int(kept.numel()))
        entries = [(weight_names[id(layer.weight)], layer.out_dim), *layer.coupled, *layer.consumers]
        for name, axis in entries:
            keep.setdefault(name, {})[axis] = kept
    if not getattr(G, "filter_widths_field", ""):
        raise FsgenError(f"slimming is not implemented for {G.architecture}: its config names no filter widths")
    config = copy.deepcopy(G.config)
    setattr(config, G.filter_widths_field, widths)
    config.__post_init__()
    slim = type(G)(config)
    state = {}
    for name, tensor in G.state_dict().items():
        for axis, index in keep.get(name, {}).items():
            tensor = tensor.index_select(axis, index.to(tensor.device))
        state[name] = tensor
    # equalized-lr layers scale their weight by 1/sqrt(fan_in) at run time; fewer input channels
    # change that constant, so fold the old/new ratio into the stored weight
    old_modules = dict(G.named_modules())
    for name, module in slim.named_modules():
        old = old_modules.get(name)
        scale = getattr(module, "scale", None)
        if isinstance(scale, float) and old is not None and getattr(old, "scale", scale) != scale:
            state[f"{name}.weight"] = state[f"{name}.weight"] * (old.scale / scale)
    slim.load_state_dict(state)
    return slim.eval()
