"""``fsgen convert``: rosinality ``.pt``, NVlabs ``.pkl`` and DCGAN checkpoints → an fsgen_hub hub folder.

DCGANs come in two key layouts: the PyTorch tutorial's ``main.N`` (optionally under
``netG_state_dict``) and the HugGAN community models' ``model.N`` (``PyTorchModelHubMixin``
generators saved as ``pytorch_model.bin`` or ``model.safetensors``). The source may be a local
file, or a file in a hub repo (``REPO_ID/FILE``, or ``REPO_ID`` alone for its
``model.safetensors``/``pytorch_model.bin``), fetched with ``hf_hub_download``.

The output folder is written atomically: a failure leaves nothing behind.
"""
from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

from fsgen_hub.utils.constants import CONFIG_NAME, WEIGHTS_NAME, __version__
from fsgen_hub.utils.errors import CheckpointError, ModelNotFoundError
from fsgen_hub.utils.hub_utils import commit_from_cache_path, hub_download
from fsgen_hub.utils.io import atomic_dir

FORMATS = ("rosinality", "stylegan2-ada", "dcgan")


def detect_format(path: Path) -> str:
    """Guess the checkpoint format from its container and keys (never unpickling anything unsafe)."""
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    if path.suffix == ".pkl":
        return "stylegan2-ada"
    if path.suffix == ".safetensors":
        state = _load_state(path)
        if _dcgan_generator_state(state)[0]:
            return "dcgan"
        raise CheckpointError(f"{path} holds no DCGAN generator weights (main.N / model.N keys); pass --from")
    if not zipfile.is_zipfile(path):
        raise CheckpointError(f"{path} is not a torch checkpoint or an NVlabs .pkl; pass --from {'|'.join(FORMATS)}")
    state = _load_state(path)
    if isinstance(state, dict) and ("g_ema" in state or "latent_avg" in state):
        return "rosinality"
    if isinstance(state, dict) and ("netG_state_dict" in state or _dcgan_generator_state(state)[0]):
        return "dcgan"
    raise CheckpointError(f"cannot tell the format of {path}; pass --from {'|'.join(FORMATS)}")


def _load_state(path: Path):
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
            raise CheckpointError(f"cannot read {path}: {str(exc).splitlines()[0][:160]} (truncated or corrupt?)") from None
    from fsgen_hub.models.convert_stylegan2 import _torch_load

    return _torch_load(path)


def _dcgan_generator_state(state) -> tuple[dict, str | None]:
    """(state dict in the tutorial's ``main.N`` names, layout) of a DCGAN generator, or ({}, None).

    HugGAN's mixin DCGANs name their Sequential ``model``: the same layers under ``model.N``."""
    if not isinstance(state, dict):
        return {}, None
    if any(k.startswith("main.") for k in state):
        return state, "tutorial"
    if state and all(isinstance(k, str) and k.startswith("model.") for k in state) and "model.0.weight" in state:
        return {"main." + k[len("model."):]: v for k, v in state.items()}, "huggan"
    return {}, None


def convert_dcgan(path: str | Path):
    """DCGAN-tutorial state dict (plain, or under ``netG_state_dict``/``netD_state_dict``) → G, D | None."""
    from fsgen_hub.models.dcgan import DCGANConfig, DCGANDiscriminator, DCGANGenerator

    path = Path(path)
    ckpt = _load_state(path)
    if not isinstance(ckpt, dict):
        raise CheckpointError(f"{path} does not hold a DCGAN state dict")
    g_state, layout = _dcgan_generator_state(ckpt.get("netG_state_dict", ckpt))
    convs = sorted((int(k.split(".")[1]), v) for k, v in g_state.items()
                   if k.startswith("main.") and k.endswith(".weight") and v.ndim == 4)
    if not convs:
        raise CheckpointError(f"{path} has no DCGAN generator weights (main.N.weight); try --from rosinality")
    nz = convs[0][1].shape[0]
    hidden = [w.shape[1] for _, w in convs[:-1]]
    nc = convs[-1][1].shape[1]
    resolution = 4 * 2 ** (len(convs) - 1)
    ngf = hidden[-1]
    config = DCGANConfig(resolution=resolution, nz=nz, ngf=ngf, nc=nc)
    if hidden != config.generator_widths():
        config = DCGANConfig(resolution=resolution, nz=nz, ngf=ngf, nc=nc, channels=hidden)
    G = DCGANGenerator(config)
    _load(G, g_state, path)
    D = None
    if "netD_state_dict" in ckpt:
        d_state = ckpt["netD_state_dict"]
        ndf = d_state["main.0.weight"].shape[0]
        D = DCGANDiscriminator(DCGANConfig(resolution=resolution, nz=nz, ngf=ngf, ndf=ndf, nc=nc))
        _load(D, d_state, path)
    return G.eval(), (D.eval() if D is not None else None), {"format": "dcgan", "layout": layout}


def _load(model, state, path):
    own = model.state_dict()
    if set(own) != set(state) or any(own[k].shape != state[k].shape for k in own):
        raise CheckpointError(f"{path}: weights do not form a DCGAN-tutorial network (names or shapes differ)")
    model.load_state_dict(state)


def check_output_folder(src: Path, out_dir: Path, overwrite: bool) -> None:
    """``out_dir`` is replaced whole: refuse anything whose loss the user did not ask for.

    The input is never inside what gets replaced; a non-empty folder that is not an fsgen_hub model folder
    (a checkpoints folder, a home directory) is replaced only with ``overwrite``.
    """
    if out_dir.is_symlink() or (out_dir.exists() and not out_dir.is_dir()):
        raise CheckpointError(f"{out_dir} exists and is not a folder: choose another output folder")
    if not out_dir.exists():
        return
    resolved = out_dir.resolve()
    if src.resolve().is_relative_to(resolved):
        raise CheckpointError(f"{out_dir} contains the input {src}: replacing it would delete the checkpoint; "
                              "choose another output folder")
    if not any(out_dir.iterdir()) or overwrite:
        return
    is_model_folder = (out_dir / CONFIG_NAME).is_file() and (out_dir / WEIGHTS_NAME).is_file()
    if not is_model_folder:
        raise CheckpointError(f"{out_dir} is not empty and is not an fsgen_hub model folder: choose another output "
                              "folder, or pass --overwrite to replace it with the converted model")


CHECKPOINT_SUFFIXES = (".pt", ".pth", ".pkl", ".bin", ".ckpt", ".safetensors")
HUB_WEIGHT_FILES = (WEIGHTS_NAME, "pytorch_model.bin")  # what PyTorchModelHubMixin writes, newest first


def resolve_checkpoint(src: str | Path, revision: str | None = None) -> tuple[Path, dict | None]:
    """(local file, hub origin or None): a local file as it is; ``REPO_ID/FILE`` or ``REPO_ID`` via hf_hub_download."""
    text = str(src)
    local = Path(text).expanduser()
    parts = text.split("/")
    if local.exists() or text.startswith((".", "/", "~")) or "\\" in text or len(parts) < 2 or not all(parts) \
            or (len(parts) == 2 and local.suffix in CHECKPOINT_SUFFIXES):  # dir/file.pt: a local path, not a repo
        return local, None
    repo_id = "/".join(parts[:2])
    names = ["/".join(parts[2:])] if len(parts) > 2 else list(HUB_WEIGHT_FILES)
    for name in names:
        try:
            local = hub_download(repo_id, name, revision=revision)
        except ModelNotFoundError as exc:
            if len(names) > 1 and "has no" in str(exc):
                continue  # try the next usual weights file name
            raise
        return Path(local), {"id": repo_id, "revision": revision, "commit": commit_from_cache_path(local), "file": name}
    raise CheckpointError(f"hub repo {repo_id!r} has none of {', '.join(HUB_WEIGHT_FILES)}: name the file, "
                          f"e.g. fsgen convert {repo_id}/generator.pth OUT")


def convert_checkpoint(src: str | Path, out_dir: str | Path, from_format: str | None = None,
                       lineage_extra: dict | None = None, revision: str | None = None, overwrite: bool = False) -> Path:
    """Convert ``src`` into the hub folder ``out_dir`` (config.json, model.safetensors, discriminator/, lineage.json).

    ``src``: a local checkpoint file, or ``REPO_ID/FILE`` / ``REPO_ID`` on the hub (at ``revision``).
    An existing ``out_dir`` is replaced when it is empty or an fsgen_hub model folder; any other folder only
    with ``overwrite``; a folder holding ``src`` never.
    """
    if from_format is not None and from_format not in FORMATS:
        raise CheckpointError(f"unknown --from {from_format!r}; choose one of {', '.join(FORMATS)}")
    src, hub_origin = resolve_checkpoint(src, revision)
    out_dir = Path(out_dir)
    if not src.is_file():
        raise CheckpointError(f"checkpoint {src} does not exist")
    check_output_folder(src, out_dir, overwrite)
    fmt = from_format or detect_format(src)
    if fmt == "rosinality":
        from fsgen_hub.models.convert_stylegan2 import convert_rosinality as convert
    elif fmt == "stylegan2-ada":
        from fsgen_hub.models.convert_stylegan2 import convert_nvlabs as convert
    else:
        convert = convert_dcgan
    if fmt == "stylegan2-ada" and zipfile.is_zipfile(src):
        raise CheckpointError(f"{src} is a torch zip checkpoint, not an NVlabs .pkl: use --from rosinality or dcgan")
    if fmt != "stylegan2-ada" and src.suffix != ".safetensors" and not zipfile.is_zipfile(src):
        raise CheckpointError(f"{src} is not a torch checkpoint: --from {fmt} is wrong for it (an NVlabs .pkl?)")
    G, D, info = convert(src)
    lineage = {
        "fsgen_hub_version": __version__,
        "kind": "converted",
        "base_model": {"id": src.name, "architecture": G.architecture},
        "conversion": {"source_file": src.name, "sha256": hashlib.sha256(src.read_bytes()).hexdigest(), **info},
        "discriminator": "converted" if D is not None else "absent",
    }
    if hub_origin is not None:  # the base model is the hub repo (the card links it), at the commit downloaded
        lineage["base_model"] = {"id": hub_origin["id"], "revision": hub_origin["revision"],
                                 "commit": hub_origin["commit"], "architecture": G.architecture}
        lineage["conversion"]["source_file"] = hub_origin["file"]
    for key, value in (lineage_extra or {}).items():
        lineage[key] = {**lineage.get(key, {}), **value} if isinstance(value, dict) else value
    with atomic_dir(out_dir) as tmp:
        G.save_pretrained(tmp, discriminator=D, lineage=lineage)
    return out_dir
