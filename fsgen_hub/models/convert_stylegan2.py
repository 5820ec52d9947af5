"""Exact conversion of rosinality ``.pt`` and NVlabs stylegan2-ada/stylegan3-style ``.pkl`` checkpoints.

rosinality: ``torch.load(weights_only=True)``; names already match ours, widths are read from the
tensor shapes. NVlabs: the pickle embeds the networks' source code; ``load_nvlabs_pickle`` rebuilds
only tensors and plain attributes through an unpickler with an explicit allow-list and never runs
the embedded ``module_src``; the NVlabs names are then mapped onto ours. The maths of the two code
bases is the same (equalized lr gains, [1,3,3,1] FIR, modulation/demodulation, skip generator,
resnet discriminator with minibatch-stddev), so a faithful mapping reproduces their outputs.
"""
from __future__ import annotations

import argparse
import collections
import hashlib
import io
import math
import pickle
import re
from pathlib import Path
from typing import Any

import torch

from fsgen_hub.models.modeling_utils import MAX_TENSOR_ELEMENTS
from fsgen_hub.models.ops import make_kernel
from fsgen_hub.models.stylegan2 import StyleGAN2Config, StyleGAN2Discriminator, StyleGAN2Generator
from fsgen_hub.utils.errors import CheckpointError

STANDARD_FIR = make_kernel([1, 3, 3, 1])


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def _first_line(exc: BaseException, limit: int = 160) -> str:
    text = _ANSI.sub("", str(exc)).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:limit]


def check_tensor_sizes(obj: Any, where: str, _depth: int = 0) -> None:
    """Refuse tensors that declare more elements than their storage holds (zero or overlapping strides, which
    cost nothing to load but gigabytes once copied) or more than any layer of a supported model has."""
    if _depth > 32:
        raise CheckpointError(f"{where} is nested too deeply to be a checkpoint")
    if isinstance(obj, torch.Tensor):
        if obj.numel() > MAX_TENSOR_ELEMENTS:
            raise CheckpointError(f"{where} holds a tensor of {obj.numel():,} elements, more than fsgen_hub loads "
                                  f"({MAX_TENSOR_ELEMENTS:,}): not a checkpoint of a supported model")
        if obj.numel() * obj.element_size() > obj.untyped_storage().nbytes():
            raise CheckpointError(f"{where} holds a tensor of shape {tuple(obj.shape)} that declares more elements "
                                  "than it stores (zero or overlapping strides): refused")
    elif isinstance(obj, dict):
        for value in obj.values():
            check_tensor_sizes(value, where, _depth + 1)
    elif isinstance(obj, (list, tuple)):
        for value in obj:
            check_tensor_sizes(value, where, _depth + 1)
    elif isinstance(obj, argparse.Namespace):
        check_tensor_sizes(vars(obj), where, _depth + 1)


def _torch_load(path: Path) -> Any:
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        # the training scripts of rosinality, CDC, RICK and AdAM store their argparse.Namespace under "args":
        # that one plain class is allowed, as data; anything else that is not tensors is refused
        with torch.serialization.safe_globals([argparse.Namespace]):
            data = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(
            f"{path} holds objects other than tensors and is refused for safety ({_first_line(exc, 120)})"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError, TypeError, AttributeError, MemoryError, RecursionError) as exc:
        raise CheckpointError(f"cannot read {path}: {_first_line(exc)} (truncated or not a torch file?)") from None
    check_tensor_sizes(data, str(path))
    return data


def _check_fir(state: dict[str, torch.Tensor], scale_by_key: dict[str, float]) -> None:
    for key, value in state.items():
        if key.endswith("kernel") or key.endswith("resample_filter"):
            scale = next((s for suffix, s in scale_by_key.items() if key.endswith(suffix)), 1.0)
            expected = STANDARD_FIR * scale if value.ndim == 2 else None
            if expected is not None and (value.shape != expected.shape or not torch.allclose(value, expected, atol=1e-6)):
                raise CheckpointError(f"{key} is not the [1,3,3,1] filter: only that resampling filter is supported")


# ---------------------------------------------------------------------------- rosinality
def infer_rosinality_generator_config(state: dict[str, torch.Tensor], lr_mlp: float = 0.01) -> StyleGAN2Config:
    try:
        style_dim = state["style.1.weight"].shape[1]
        n_mlp = len([k for k in state if re.fullmatch(r"style\.\d+\.weight", k)])
        log_size = len([k for k in state if re.fullmatch(r"to_rgbs\.\d+\.conv\.weight", k)]) + 2
        resolution = 2**log_size
        channels = {"4": state["input.input"].shape[1]}
        conv_widths = [state["conv1.conv.weight"].shape[1]]
        for k in range(log_size - 2):
            up, same = state[f"convs.{2 * k}.conv.weight"], state[f"convs.{2 * k + 1}.conv.weight"]
            conv_widths += [up.shape[1], same.shape[1]]
            channels[str(2 ** (k + 3))] = same.shape[1]
    except KeyError as exc:
        raise CheckpointError(f"not a rosinality StyleGAN2 generator state dict: missing {exc}") from None
    uniform = conv_widths[0] == channels["4"] and all(
        conv_widths[1 + 2 * k] == conv_widths[2 + 2 * k] for k in range(log_size - 2)
    )
    return StyleGAN2Config(resolution=resolution, style_dim=style_dim, n_mlp=n_mlp, lr_mlp=lr_mlp,
                           channels=channels, conv_channels=None if uniform else conv_widths)


def infer_rosinality_discriminator_config(state: dict[str, torch.Tensor], g_config: StyleGAN2Config) -> StyleGAN2Config:
    try:
        n_blocks = len([k for k in state if re.fullmatch(r"convs\.\d+\.conv1\.0\.weight", k)])
        resolution = 2 ** (n_blocks + 2)
        channels = {str(resolution): state["convs.0.0.weight"].shape[0]}
        for j in range(1, n_blocks + 1):
            channels[str(resolution // 2**j)] = state[f"convs.{j}.conv2.1.weight"].shape[0]
    except KeyError as exc:
        raise CheckpointError(f"not a rosinality StyleGAN2 discriminator state dict: missing {exc}") from None
    return StyleGAN2Config(resolution=resolution, style_dim=g_config.style_dim, n_mlp=g_config.n_mlp,
                           lr_mlp=g_config.lr_mlp, channels=channels)


def _load_exact(model: torch.nn.Module, state: dict[str, torch.Tensor], what: str) -> None:
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if missing or unexpected:
        raise CheckpointError(f"{what} does not match StyleGAN2: missing {missing[:3]}, unexpected {unexpected[:3]}")
    for key, value in state.items():
        if own[key].shape != value.shape:
            raise CheckpointError(f"{what}: {key} has shape {tuple(value.shape)}, expected {tuple(own[key].shape)}")
    model.load_state_dict({k: v.float() for k, v in state.items()})


def convert_rosinality(path: str | Path) -> tuple[StyleGAN2Generator, StyleGAN2Discriminator | None, dict]:
    """rosinality checkpoint (dict with ``g_ema``, ``d``, ``latent_avg``, ...) → our G (from g_ema) and D."""
    path = Path(path)
    ckpt = _torch_load(path)
    if not isinstance(ckpt, dict) or not ("g_ema" in ckpt or "g" in ckpt):
        raise CheckpointError(f"{path} is not a rosinality StyleGAN2 checkpoint (no 'g_ema' entry); try --from dcgan")
    g_state = dict(ckpt.get("g_ema") or ckpt["g"])
    args = ckpt.get("args") or {}
    args = vars(args) if isinstance(args, argparse.Namespace) else args
    if not isinstance(args, dict):
        raise CheckpointError(f"{path}: 'args' is neither a dict nor an argparse.Namespace")
    _check_fir(g_state, {"blur.kernel": 4.0, "upsample.kernel": 4.0})
    try:
        lr_mlp = float(args.get("lr_mlp", 0.01))
    except (TypeError, ValueError):
        raise CheckpointError(f"{path}: args.lr_mlp is not a number ({args.get('lr_mlp')!r})") from None
    config = infer_rosinality_generator_config(g_state, lr_mlp=lr_mlp)
    G = StyleGAN2Generator(config)
    latent_avg = ckpt.get("latent_avg")
    g_state["latent_avg"] = latent_avg.reshape(-1).float() if latent_avg is not None else torch.zeros(config.style_dim)
    _load_exact(G, g_state, f"{path.name} g_ema")
    if latent_avg is None:
        G.mean_latent()  # truncation needs a mean w
    D = None
    if ckpt.get("d"):
        d_state = dict(ckpt["d"])
        _check_fir(d_state, {})
        D = StyleGAN2Discriminator(infer_rosinality_discriminator_config(d_state, config))
        _load_exact(D, d_state, f"{path.name} d")
    info = {"format": "rosinality", "generator_key": "g_ema" if "g_ema" in ckpt else "g",
            "latent_avg": "checkpoint" if latent_avg is not None else "estimated", "args": {k: str(v) for k, v in args.items()}}
    return G.eval(), (D.eval() if D is not None else None), info


# ---------------------------------------------------------------------------- NVlabs pickles
class PersistentRecord(dict):
    """What an NVlabs ``persistent_class`` instance becomes: its class name and ``__dict__``, no code."""

    @property
    def class_name(self) -> str:
        return self.get("class_name", "")

    @property
    def state(self) -> dict:
        return self.get("state", {})


def _reconstruct_persistent_record(meta: dict) -> PersistentRecord:
    if not isinstance(meta, dict) or meta.get("type") != "class" or "state" not in meta:
        raise CheckpointError("NVlabs pickle: a persistent object has an unexpected structure")
    return PersistentRecord(class_name=meta.get("class_name"), version=meta.get("version"), state=meta["state"])


def _bounded_rebuild_tensor_v2(storage, storage_offset, size, stride, *args):
    """torch's rebuild, after checking that the declared view fits inside its storage (no stride tricks)."""
    ints = lambda v: isinstance(v, tuple) and all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in v)  # noqa: E731
    if not isinstance(storage_offset, int) or storage_offset < 0 or not ints(size) or not ints(stride) or len(size) != len(stride):
        raise CheckpointError("NVlabs pickle: a tensor has an invalid shape or stride")
    numel = math.prod(size)
    if numel > MAX_TENSOR_ELEMENTS:
        raise CheckpointError(f"NVlabs pickle: a tensor declares {numel:,} elements, more than fsgen_hub loads")
    itemsize = torch.empty((), dtype=storage.dtype).element_size()
    available = getattr(storage, "_untyped_storage", storage).nbytes() // itemsize  # (TypedStorage.nbytes warns)
    if numel and (storage_offset + sum((n - 1) * s for n, s in zip(size, stride)) >= available or numel > available):
        raise CheckpointError(f"NVlabs pickle: a tensor of shape {size} declares more elements than its storage holds")
    return torch._utils._rebuild_tensor_v2(storage, storage_offset, size, stride, *args)


def _storage_from_bytes(data: bytes):
    return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)


class _PlainDict(dict):
    """Stand-in for dnnlib.util.EasyDict (a dict with attribute access: only its items matter here)."""


class _RestrictedUnpickler(pickle.Unpickler):
    """Rebuilds tensors and plain data; every global outside the allow-list is refused."""

    ALLOWED: dict[tuple[str, str], Any] = {
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("builtins", "set"): set,
        ("builtins", "frozenset"): frozenset,
        ("builtins", "slice"): slice,
        ("torch._utils", "_rebuild_tensor_v2"): _bounded_rebuild_tensor_v2,
        ("torch._utils", "_rebuild_parameter"): torch._utils._rebuild_parameter,
        ("torch._utils", "_rebuild_parameter_with_state"): getattr(torch._utils, "_rebuild_parameter_with_state", None),
        ("torch.storage", "_load_from_bytes"): _storage_from_bytes,
        ("torch_utils.persistence", "_reconstruct_persistent_obj"): _reconstruct_persistent_record,
        ("dnnlib.util", "EasyDict"): _PlainDict,
    }
    NUMPY = {"dtype", "scalar", "_reconstruct", "ndarray"}

    def find_class(self, module: str, name: str):
        if (module, name) in self.ALLOWED and self.ALLOWED[(module, name)] is not None:
            return self.ALLOWED[(module, name)]
        if module.startswith("numpy") and name in self.NUMPY and module in (
            "numpy", "numpy.core.multiarray", "numpy._core.multiarray"
        ):
            import numpy

            return {"dtype": numpy.dtype, "ndarray": numpy.ndarray,
                    "scalar": numpy._core.multiarray.scalar if hasattr(numpy, "_core") else numpy.core.multiarray.scalar,
                    "_reconstruct": numpy._core.multiarray._reconstruct if hasattr(numpy, "_core") else numpy.core.multiarray._reconstruct}[name]
        if module == "torch" and name.endswith("Storage"):
            return getattr(torch, name)
        raise CheckpointError(
            f"refused to unpickle global {module}.{name}: NVlabs pickles are read without running code, and this "
            "object is not tensor data (is the file really a stylegan2-ada/stylegan3 network pickle?)"
        )


def load_nvlabs_pickle(path: str | Path) -> dict:
    """Read an NVlabs network pickle safely: {'G': record, 'D': record, 'G_ema': record, ...}."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"pickle {path} does not exist")
    try:
        with open(path, "rb") as f:
            data = _RestrictedUnpickler(f).load()
    except CheckpointError:
        raise
    except (pickle.UnpicklingError, EOFError, AttributeError, ValueError, TypeError, IndexError, KeyError,
            RuntimeError, MemoryError, RecursionError, OverflowError) as exc:
        raise CheckpointError(f"cannot read {path} as an NVlabs pickle: {_first_line(exc)}") from None
    if not isinstance(data, dict) or not any(k in data for k in ("G_ema", "G", "D")):
        raise CheckpointError(f"{path} is not an NVlabs network pickle (expected a dict with G, D, G_ema)")
    return data


def record_state_dict(record: PersistentRecord, prefix: str = "") -> dict[str, torch.Tensor]:
    """Flatten a persistent record tree into a ``state_dict``-style mapping (parameters and buffers)."""
    state = record.state
    out: dict[str, torch.Tensor] = {}
    for group in ("_parameters", "_buffers"):
        for name, value in (state.get(group) or {}).items():
            if value is not None:
                out[prefix + name] = value.detach() if isinstance(value, torch.Tensor) else torch.as_tensor(value)
    for name, child in (state.get("_modules") or {}).items():
        if isinstance(child, dict) and "state" in child:
            out.update(record_state_dict(child, prefix + name + "."))
    return out


def record_init_kwargs(record: PersistentRecord) -> dict:
    return dict(record.state.get("_init_kwargs") or {})


def _nvlabs_channels(kwargs: dict, resolution: int) -> dict[str, int]:
    base = kwargs.get("channel_base", 32768)
    cmax = kwargs.get("channel_max", 512)
    return {str(2**i): min(base // 2**i, cmax) for i in range(2, int(math.log2(resolution)) + 1)}


def nvlabs_generator_to_rosinality(state: dict[str, torch.Tensor], kwargs: dict) -> tuple[StyleGAN2Config, dict]:
    resolution = int(kwargs["img_resolution"])
    if kwargs.get("c_dim", 0):
        raise CheckpointError("conditional NVlabs generators (c_dim > 0) are not supported")
    synth = kwargs.get("synthesis_kwargs") or {}
    if synth.get("architecture", "skip") != "skip":
        raise CheckpointError("only the 'skip' NVlabs synthesis architecture maps onto StyleGAN2 config F")
    mapping = kwargs.get("mapping_kwargs") or {}
    n_mlp = len([k for k in state if re.fullmatch(r"mapping\.fc\d+\.weight", k)])
    w_dim = int(kwargs.get("w_dim", 512))
    config = StyleGAN2Config(resolution=resolution, style_dim=w_dim, n_mlp=n_mlp,
                             lr_mlp=float(mapping.get("lr_multiplier", 0.01)),
                             channels=_nvlabs_channels(synth, resolution))
    if int(kwargs.get("z_dim", w_dim)) != w_dim:
        raise CheckpointError("NVlabs generators with z_dim != w_dim are not supported")
    out: dict[str, torch.Tensor] = {}
    for i in range(n_mlp):
        out[f"style.{i + 1}.weight"] = state[f"mapping.fc{i}.weight"]
        out[f"style.{i + 1}.bias"] = state[f"mapping.fc{i}.bias"]
    out["latent_avg"] = state["mapping.w_avg"].reshape(-1)
    out["input.input"] = state["synthesis.b4.const"].unsqueeze(0)

    def styled(dst: str, src: str) -> None:
        out[f"{dst}.conv.weight"] = state[f"{src}.weight"].unsqueeze(0)
        out[f"{dst}.conv.modulation.weight"] = state[f"{src}.affine.weight"]
        out[f"{dst}.conv.modulation.bias"] = state[f"{src}.affine.bias"]
        out[f"{dst}.noise.weight"] = state[f"{src}.noise_strength"].reshape(1)
        out[f"{dst}.activate.bias"] = state[f"{src}.bias"]

    def torgb(dst: str, src: str) -> None:
        out[f"{dst}.conv.weight"] = state[f"{src}.weight"].unsqueeze(0)
        out[f"{dst}.conv.modulation.weight"] = state[f"{src}.affine.weight"]
        out[f"{dst}.conv.modulation.bias"] = state[f"{src}.affine.bias"]
        out[f"{dst}.bias"] = state[f"{src}.bias"].reshape(1, 3, 1, 1)

    styled("conv1", "synthesis.b4.conv1")
    torgb("to_rgb1", "synthesis.b4.torgb")
    out["noises.noise_0"] = state["synthesis.b4.conv1.noise_const"].reshape(1, 1, 4, 4)
    for k, res in enumerate(config.resolutions[1:]):
        styled(f"convs.{2 * k}", f"synthesis.b{res}.conv0")
        styled(f"convs.{2 * k + 1}", f"synthesis.b{res}.conv1")
        torgb(f"to_rgbs.{k}", f"synthesis.b{res}.torgb")
        out[f"noises.noise_{2 * k + 1}"] = state[f"synthesis.b{res}.conv0.noise_const"].reshape(1, 1, res, res)
        out[f"noises.noise_{2 * k + 2}"] = state[f"synthesis.b{res}.conv1.noise_const"].reshape(1, 1, res, res)
    return config, out


def nvlabs_discriminator_to_rosinality(state: dict[str, torch.Tensor], kwargs: dict, g_config: StyleGAN2Config) -> tuple[StyleGAN2Config, dict]:
    resolution = int(kwargs["img_resolution"])
    if kwargs.get("c_dim", 0):
        raise CheckpointError("conditional NVlabs discriminators (c_dim > 0) are not supported")
    if kwargs.get("architecture", "resnet") != "resnet":
        raise CheckpointError("only the 'resnet' NVlabs discriminator architecture maps onto StyleGAN2 config F")
    epilogue = kwargs.get("epilogue_kwargs") or {}
    if epilogue.get("mbstd_group_size", 4) != 4 or epilogue.get("mbstd_num_channels", 1) != 1:
        raise CheckpointError("only minibatch-stddev group 4 with 1 channel is supported")
    config = StyleGAN2Config(resolution=resolution, style_dim=g_config.style_dim, n_mlp=g_config.n_mlp,
                             lr_mlp=g_config.lr_mlp, channels=_nvlabs_channels(kwargs, resolution))
    out = {
        "convs.0.0.weight": state[f"b{resolution}.fromrgb.weight"],
        "convs.0.1.bias": state[f"b{resolution}.fromrgb.bias"],
    }
    fir = make_kernel([1, 3, 3, 1])
    for j, res in enumerate([2**i for i in range(int(math.log2(resolution)), 2, -1)], start=1):
        out[f"convs.{j}.conv1.0.weight"] = state[f"b{res}.conv0.weight"]
        out[f"convs.{j}.conv1.1.bias"] = state[f"b{res}.conv0.bias"]
        out[f"convs.{j}.conv2.0.kernel"] = fir
        out[f"convs.{j}.conv2.1.weight"] = state[f"b{res}.conv1.weight"]
        out[f"convs.{j}.conv2.2.bias"] = state[f"b{res}.conv1.bias"]
        out[f"convs.{j}.skip.0.kernel"] = fir
        out[f"convs.{j}.skip.1.weight"] = state[f"b{res}.skip.weight"]
    out["final_conv.0.weight"] = state["b4.conv.weight"]
    out["final_conv.1.bias"] = state["b4.conv.bias"]
    out["final_linear.0.weight"] = state["b4.fc.weight"]
    out["final_linear.0.bias"] = state["b4.fc.bias"]
    out["final_linear.1.weight"] = state["b4.out.weight"]
    out["final_linear.1.bias"] = state["b4.out.bias"]
    return config, out


def _with_rosinality_buffers(model: torch.nn.Module, state: dict) -> dict:
    """Add the fixed FIR buffers our modules carry (NVlabs stores them per layer as resample_filter)."""
    own = model.state_dict()
    for key, value in own.items():
        if key.endswith("kernel") and key not in state:
            state[key] = value
    return state


def convert_nvlabs_state(
    g_state: dict[str, torch.Tensor], g_kwargs: dict, d_state: dict | None = None, d_kwargs: dict | None = None
) -> tuple[StyleGAN2Generator, StyleGAN2Discriminator | None]:
    """NVlabs-named state dicts + constructor kwargs (the parity-fixture form) → our G and D."""
    _check_fir({k: v for k, v in g_state.items() if k.endswith("resample_filter")}, {})
    try:
        g_config, g_mapped = nvlabs_generator_to_rosinality(g_state, g_kwargs)
    except KeyError as exc:
        raise CheckpointError(f"NVlabs generator lacks tensor {exc}: not a stylegan2-ada generator") from None
    G = StyleGAN2Generator(g_config)
    _load_exact(G, _with_rosinality_buffers(G, g_mapped), "NVlabs G")
    D = None
    if d_state is not None:
        try:
            d_config, d_mapped = nvlabs_discriminator_to_rosinality(d_state, d_kwargs or {}, g_config)
        except KeyError as exc:
            raise CheckpointError(f"NVlabs discriminator lacks tensor {exc}: not a stylegan2-ada discriminator") from None
        D = StyleGAN2Discriminator(d_config)
        _load_exact(D, d_mapped, "NVlabs D")
    return G.eval(), (D.eval() if D is not None else None)


def convert_nvlabs(path: str | Path) -> tuple[StyleGAN2Generator, StyleGAN2Discriminator | None, dict]:
    """NVlabs network pickle → our G (from G_ema, else G) and D, without running any pickled code."""
    path = Path(path)
    data = load_nvlabs_pickle(path)
    g_record = data.get("G_ema") or data.get("G")
    if not isinstance(g_record, PersistentRecord):
        raise CheckpointError(f"{path} has no G_ema/G network record")
    d_record = data.get("D") if isinstance(data.get("D"), PersistentRecord) else None
    g_kwargs = record_init_kwargs(g_record)
    if "img_resolution" not in g_kwargs:
        g_kwargs["img_resolution"] = g_record.state.get("img_resolution")
    d_kwargs = record_init_kwargs(d_record) if d_record else None
    if d_kwargs is not None and "img_resolution" not in d_kwargs:
        d_kwargs["img_resolution"] = d_record.state.get("img_resolution")
    try:
        G, D = convert_nvlabs_state(
            record_state_dict(g_record), g_kwargs, record_state_dict(d_record) if d_record else None, d_kwargs
        )
    except (TypeError, ValueError, AttributeError, OverflowError, RuntimeError) as exc:
        raise CheckpointError(f"{path}: the network's hyperparameters or tensors are malformed ({_first_line(exc)})") from None
    info = {"format": "stylegan2-ada", "generator_key": "G_ema" if data.get("G_ema") else "G",
            "generator_class": g_record.class_name, "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
    return G, D, info
