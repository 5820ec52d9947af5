"""Known model ids: where the weights come from, licence, paper (timm pretrained-cfg style).

``resolve_local(id)`` gives a local hub folder for ids that work offline (the DigiFace DCGAN is
converted on first use from the weights shipped in the PyPI package ``gan-face-generate``); other
ids go to the Hugging Face Hub through ``AutoGenerator.from_pretrained``. ``resolve_model_files`` is the
zoo-aware file resolution every loader above this layer uses: local folder → zoo id → hub repo id.
"""
from __future__ import annotations

import difflib
import fnmatch
import os
from dataclasses import dataclass, field
from pathlib import Path

from fsgen_hub.utils import hub_utils
from fsgen_hub.utils.constants import CONFIG_NAME, WEIGHTS_NAME
from fsgen_hub.utils.errors import FsgenError, ModelNotFoundError
from fsgen_hub.utils.extras import require

DIGIFACE_SOURCE = "fsgen/dcgan-digiface64"
# the source of `fsgen adapt` without --source: the one offline source that ships its discriminator, which DAP
# (and RICK, FreezeD, AdAM...) adapt rather than replace; its grid on the embedded emoji is plainly emoji where the
# DigiFace DCGAN, with a fresh D, shows checkerboards (README "The main command")
DEFAULT_SOURCE = "fsgen/stylegan2-faces64"
ASSETS = Path(__file__).resolve().parent / "assets"


@dataclass(frozen=True)
class ZooEntry:
    id: str
    architecture: str
    resolution: int
    source: str                      # how the weights are obtained
    license: str
    paper: str
    offline: bool                    # resolvable with no network
    tags: tuple[str, ...] = ()
    notes: str = ""
    has_discriminator: bool = False
    data_terms: str = ""             # terms inherited from the training data, shown on cards
    extra: dict = field(default_factory=dict, compare=False, hash=False)


_ENTRIES = [
    ZooEntry(
        DIGIFACE_SOURCE, "dcgan", 64,
        "PyPI package gan-face-generate (weights.tar, netG_state_dict), converted on first use",
        "mit", "Radford et al., ICLR 2016 (DCGAN); trained on DigiFace-1M (Bae et al., WACV 2023)", True,
        ("faces", "synthetic", "source"),
        "64x64 DCGAN trained on synthetic DigiFace-1M faces; ships without a discriminator "
        "(adaptation starts a fresh one)",
    ),
    ZooEntry(
        "fsgen/stylegan2-faces64", "stylegan2", 64,
        "trained by this project with `fsgen train` on UTKFace 64 px; shipped under fsgen_hub/assets/stylegan2-faces64",
        "utkface-non-commercial-research", "Karras et al., CVPR 2020 (StyleGAN2); data: Zhang, Song & Qi, CVPR 2017 (UTKFace)", True,
        ("faces", "source"), "small StyleGAN2 with its discriminator, for methods that need the source D",
        has_discriminator=True, data_terms="UTKFace: non-commercial research use only; photos of real people",
    ),
    ZooEntry(
        "fsgen/stylegan2-ffhq256", "stylegan2", 256,
        "Hugging Face Hub: rosinality FFHQ-256 checkpoint (as used by CDC/RICK) after `fsgen convert`",
        "nvidia-source-code-license-nc", "Karras et al., CVPR 2020 (StyleGAN2); FFHQ (Karras et al., CVPR 2019)", False,
        ("faces", "source"), "not verifiable offline: needs the hub", has_discriminator=True,
        data_terms="FFHQ: Creative Commons BY-NC-SA 4.0",
    ),
    ZooEntry(
        "fsgen/stylegan2-church256", "stylegan2", 256,
        "Hugging Face Hub: rosinality LSUN-Church-256 checkpoint after `fsgen convert`",
        "nvidia-source-code-license-nc", "Karras et al., CVPR 2020 (StyleGAN2); LSUN (Yu et al., 2015)", False,
        ("churches", "source"), "not verifiable offline: needs the hub", has_discriminator=True,
    ),
]
ZOO: dict[str, ZooEntry] = {entry.id: entry for entry in _ENTRIES}


def list_models(pattern: str | None = None) -> list[str]:
    return [name for name in ZOO if pattern is None or fnmatch.fnmatch(name, pattern)]


def get_entry(model_id: str) -> ZooEntry:
    if model_id not in ZOO:
        close = difflib.get_close_matches(model_id, list(ZOO), n=3, cutoff=0.4)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise ModelNotFoundError(f"{model_id!r} is not a zoo id; `fsgen zoo` lists them.{hint}")
    return ZOO[model_id]


def cache_dir() -> Path:
    root = os.environ.get("FSGEN_HOME") or os.path.join(os.path.expanduser("~"), ".cache", "fsgen_hub")
    return Path(root) / "zoo"


def resolve_local(model_id: str) -> Path | None:
    """A local hub folder for offline zoo ids (built on first use), else None."""
    if model_id == DIGIFACE_SOURCE:
        return _digiface_folder()
    if model_id == "fsgen/stylegan2-faces64":
        folder = ASSETS / "stylegan2-faces64"
        return folder if (folder / CONFIG_NAME).is_file() else None
    return None


def resolve_model_files(model_id: str | os.PathLike, filenames: list[str], **hub_kwargs) -> dict[str, str]:
    """Local paths of ``filenames`` for a local folder, a zoo id or a hub repo id (``hub_kwargs``: subfolder,
    revision, cache_dir, force_download, token, local_files_only); one-line errors naming close zoo ids."""
    model_id = str(model_id)
    zoo_dir = None if Path(model_id).expanduser().is_dir() else resolve_local(model_id)
    return hub_utils.resolve_model_files(model_id, filenames, local_dir=zoo_dir, known_ids=list_models(), **hub_kwargs)


def digiface_weights_path() -> Path:
    gan_face_generate = require("gan_face_generate", f"the zoo model {DIGIFACE_SOURCE}")
    path = Path(gan_face_generate.__file__).resolve().parent / "weights.tar"
    if not path.is_file():
        raise FsgenError(f"{path} is missing: reinstall gan-face-generate")
    return path


def _digiface_folder() -> Path:
    folder = cache_dir() / DIGIFACE_SOURCE.replace("/", "--")
    if (folder / WEIGHTS_NAME).is_file() and (folder / CONFIG_NAME).is_file():
        return folder
    from fsgen_hub.models.convert import convert_checkpoint  # here, not at the top: `fsgen zoo` needs no torch

    entry = ZOO[DIGIFACE_SOURCE]
    convert_checkpoint(
        digiface_weights_path(), folder, from_format="dcgan",
        lineage_extra={"base_model": {"id": DIGIFACE_SOURCE, "architecture": "dcgan", "license": entry.license},
                       "notes": entry.notes},
    )
    return folder
