"""The parametrisation toolkit of modulation methods (AdaFM, BSA): adapter parametrizations on a frozen
base generator, their tensors, and baking them into a plain generator.

Modulation methods leave the source generator's tensors untouched and add small parametrizations
(``torch.nn.utils.parametrize``) on some of them: AdaFM's per-kernel γ/β, BSA's per-channel scale/shift.
The method base class is ``fsgen_hub.methods.modulation.ModulationMethod``; the delta files that hold a
training result (base model + these tensors, PEFT-style) are read and written by ``fsgen_hub.methods.adapters``.
"""
from __future__ import annotations

import copy
import hashlib

import torch
from torch import nn
from torch.nn.utils import parametrize

from fsgen_hub.utils.errors import CheckpointError, FsgenError


# ----------------------------------------------------------------------------- parametrizations
class AdapterParametrization(nn.Module):
    """Base of the parametrizations a modulation method registers; ``key`` names its tensors in the delta.

    Two parametrizations may share a parameter (BSA's scale acts on a BN weight and bias): they then carry
    the same ``key`` and parameter name, and the delta stores it once.
    """

    def __init__(self, key: str):
        super().__init__()
        self.key = key


def register(module: nn.Module, tensor_name: str, parametrization: AdapterParametrization) -> None:
    parametrize.register_parametrization(module, tensor_name, parametrization)


def split_name(model: nn.Module, dotted: str) -> tuple[nn.Module, str]:
    """``"convs.1.conv.modulation.weight"`` → (the modulation module, "weight")."""
    path, _, attr = dotted.rpartition(".")
    try:
        module = model.get_submodule(path) if path else model
    except AttributeError:
        raise FsgenError(f"{type(model).__name__} has no module {path!r}") from None
    return module, attr


def adapter_parametrizations(model: nn.Module) -> list[AdapterParametrization]:
    return [m for m in model.modules() if isinstance(m, AdapterParametrization)]


def adapter_tensors(model: nn.Module) -> dict[str, torch.Tensor]:
    """{"<key>.<param>": tensor} of every adapter parametrization in ``model`` (shared ones once)."""
    out: dict[str, torch.Tensor] = {}
    for p in adapter_parametrizations(model):
        for name, param in p.named_parameters(recurse=False):
            out[f"{p.key}.{name}"] = param
    return out


@torch.no_grad()
def set_adapter_tensors(model: nn.Module, tensors: dict[str, torch.Tensor], source: str = "the delta") -> None:
    own = adapter_tensors(model)
    missing, unexpected = sorted(set(own) - set(tensors)), sorted(set(tensors) - set(own))
    if missing or unexpected:
        raise CheckpointError(
            f"{source} does not match the method's layers: missing {missing[:3]}, unexpected {unexpected[:3]} "
            "(was it saved with other method options or another base?)"
        )
    for key, param in own.items():
        if tuple(tensors[key].shape) != tuple(param.shape):
            raise CheckpointError(
                f"{source}: {key} has shape {tuple(tensors[key].shape)}, expected {tuple(param.shape)}")
        param.copy_(tensors[key].to(param.device, param.dtype))


@torch.no_grad()
def baked_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The state dict under the base model's keys with every adapter parametrization evaluated (W' instead of W)."""
    state = dict(plain_state(model))
    for path, module in model.named_modules():
        if not parametrize.is_parametrized(module):
            continue
        for tensor_name in module.parametrizations:
            if any(isinstance(p, AdapterParametrization) for p in module.parametrizations[tensor_name]):
                state[f"{path}.{tensor_name}" if path else tensor_name] = getattr(module, tensor_name).detach().clone()
    return state


def bake(model: nn.Module) -> nn.Module:
    """A new plain generator of the model's class with the adapter parametrizations baked in; ``model`` is untouched.

    (``parametrize.remove_parametrizations`` is not used: a deep copy of a parametrized module shares its
    generated class, so removing the parametrization from the copy would break the original too.)
    """
    cls = type(model).__bases__[0] if parametrize.is_parametrized(model) else type(model)
    plain = cls(copy.deepcopy(model.config))
    plain.load_state_dict(baked_state(model), strict=True)
    plain.to(next(model.parameters()).device).train(model.training)
    for attr in ("source_info",):
        if hasattr(model, attr):
            setattr(plain, attr, copy.deepcopy(getattr(model, attr)))
    return plain


def plain_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The state dict under the base model's keys: parametrized tensors appear as their frozen originals."""
    out = {}
    for key, value in model.state_dict().items():
        if ".parametrizations." not in key:
            out[key] = value
        elif key.endswith(".original"):
            out[key.replace(".parametrizations.", ".")[: -len(".original")]] = value
    return out


def weights_digest(model: nn.Module) -> str:
    """sha256 over the (plain) state dict: identifies the exact base weights a delta was trained on."""
    h = hashlib.sha256()
    for key, value in sorted(plain_state(model).items()):
        h.update(key.encode())
        h.update(str(value.dtype).encode())
        h.update(value.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())  # any dtype
    return h.hexdigest()
