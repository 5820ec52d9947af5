"""The base every generator/discriminator inherits (diffusers' ``models/modeling_utils.py``): a
``PyTorchModelHubMixin`` with exact, strict loading, the config dataclass base, and the model registry.

Folder layout written by ``save_pretrained`` (the project's own format, docs/CONTRACTS.md)::

    config.json              {"architecture": "stylegan2", "role": "generator", "fsgen_hub_version": ..., <config fields>}
    model.safetensors        the generator's state dict (EMA weights for trained models)
    discriminator/           optional: config.json + model.safetensors of the matching discriminator
    lineage.json             optional: how an adapted model was made (written by the trainer)
    README.md                optional: model card (fsgen_hub.cards)

The registry is a leaf: each architecture file calls ``register_model`` for its classes and
``fsgen_hub/models/__init__.py`` imports every architecture file, so the registry never imports its
plugins. A class's own ``from_pretrained`` takes a folder or a hub repo id; ``fsgen_hub.auto`` adds
zoo ids, adapter folders and dispatch on ``config.json``'s architecture.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import torch
from huggingface_hub import PyTorchModelHubMixin

from fsgen_hub.cards import is_unedited_generated_card, refresh_model_card, render_model_card
from fsgen_hub.folder import read_config
from fsgen_hub.publish import publishable_files, push_folder
from fsgen_hub.utils.constants import (
    CARD_NAME,
    CONFIG_NAME,
    DISCRIMINATOR_SUBFOLDER,
    DOCS_URL,
    LIBRARY_NAME,
    LINEAGE_NAME,
    PIPELINE_TAG,
    REPO_URL,
    WEIGHTS_NAME,
    __version__,
)
from fsgen_hub.utils.errors import CheckpointError, FsgenError
from fsgen_hub.utils.hub_utils import commit_from_cache_path, resolve_model_files

logger = logging.getLogger(__name__)

# (architecture, role) -> class; filled by register_model calls in the architecture files
_MODEL_CLASSES: dict[tuple[str, str], type[HubModel]] = {}

T = TypeVar("T", bound="HubModel")

# Bounds on what a config.json (or a converted checkpoint) may declare, checked before any tensor is
# allocated: a few bytes of JSON must not make the loader reserve gigabytes. Generous for real models
# (StyleGAN2 config F at 1024 px: 512 channels, 30M parameters).
MAX_WIDTH = 4096            # channels of a layer
MAX_LATENT = 4096           # z / w size
MAX_MAPPING_LAYERS = 64
MAX_PARAMETERS = 200_000_000  # generator + discriminator, about 0.8 GB in float32
MAX_TENSOR_ELEMENTS = 1 << 26


def check_int(owner: str, name: str, value: Any, low: int, high: int) -> int:
    """``value`` when it is a whole number in [low, high] (bools, floats and strings are refused)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise CheckpointError(f"{owner}.{name} must be a whole number, got {value!r}: fix config.json or re-convert")
    if not low <= value <= high:
        raise CheckpointError(f"{owner}.{name} must be between {low} and {high}, got {value}: fix config.json")
    return value


def check_float(owner: str, name: str, value: Any, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or not low <= value <= high:
        raise CheckpointError(f"{owner}.{name} must be a finite number between {low} and {high}, got {value!r}: "
                              "fix config.json")
    return float(value)


def check_parameter_budget(owner: str, count: int) -> None:
    if count > MAX_PARAMETERS:
        raise CheckpointError(f"{owner} declares about {count:,} parameters, more than the {MAX_PARAMETERS:,} "
                              "fsgen_hub loads: the config is corrupt or not meant for this library")


@dataclasses.dataclass
class ModelConfig:
    """Base of every architecture's config dataclass (fields documented with ``metadata={"help": ...}``)."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]):
        if not isinstance(data, dict):
            raise CheckpointError(f"invalid {cls.__name__} in config.json: expected a JSON object")
        names = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in names}
        try:
            return cls(**kwargs)
        except (TypeError, ValueError, OverflowError) as exc:
            raise CheckpointError(f"invalid {cls.__name__} in config.json: {str(exc).splitlines()[0][:160]}") from None


# Class-level hub metadata, as PyTorchModelHubMixin intends (it fills ModelCardData and the card's links).
# No class-level `license`: a model's licence is inherited from its base model or data, per model, and the
# card (fsgen_hub.cards) derives it from lineage.json; a class default would mislabel converted weights.
class HubModel(
    PyTorchModelHubMixin,
    library_name=LIBRARY_NAME,
    tags=["gan", "fsgen_hub"],
    pipeline_tag=PIPELINE_TAG,
    repo_url=REPO_URL,
    docs_url=DOCS_URL,
):
    """Mixin giving ``save_pretrained``/``from_pretrained``/``push_to_hub`` to our nn.Modules.

    Subclasses set ``architecture`` ("stylegan2"), ``role`` ("generator"/"discriminator") and
    ``config_class`` and take a single ``config`` argument in ``__init__``; the live ``self.config``
    (not the one recorded at construction) is what gets saved, so pruned/slimmed widths stay right.

    ``save_pretrained``/``push_to_hub`` and ``fsgen push`` are one path: the folder gets the card
    ``fsgen push`` writes (``generate_model_card``), and pushing goes through
    ``fsgen_hub.publish.push_folder`` (one commit, the same file selection and error handling).
    """

    architecture: ClassVar[str] = ""
    role: ClassVar[str] = ""
    config_class: ClassVar[type[ModelConfig]] = ModelConfig
    config: ModelConfig

    # ------------------------------------------------------------------ saving
    def config_dict(self, config: ModelConfig | None = None) -> dict[str, Any]:
        return {
            "architecture": self.architecture,
            "role": self.role,
            "fsgen_hub_version": __version__,
            **(config or self.config).to_dict(),
        }

    def _config_for_save(self, config) -> ModelConfig:
        """The mixin's ``config=`` (a dict or our config dataclass), checked against the weights; else the live one."""
        if config is None:
            return self.config
        if isinstance(config, ModelConfig):
            config = config.to_dict()
        if not isinstance(config, dict):
            raise FsgenError(f"config must be a dict or a {self.config_class.__name__}, not {type(config).__name__}")
        chosen = self.config_class.from_dict({**self.config.to_dict(), **config})
        expected = {k: tuple(v.shape) for k, v in type(self)(chosen).state_dict().items()}
        if expected != {k: tuple(v.shape) for k, v in self.state_dict().items()}:
            raise FsgenError(
                f"config= does not describe this model's weights (other tensor names or shapes): leave it out, "
                f"fsgen_hub saves the model's own {self.config_class.__name__}"
            )
        return chosen

    def _save_pretrained(self, save_directory: Path, config: ModelConfig | None = None) -> None:
        from safetensors.torch import save_file

        from fsgen_hub.utils.io import atomic_path, write_json

        state = {k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()}
        with atomic_path(save_directory / WEIGHTS_NAME) as tmp:
            save_file(state, str(tmp), metadata={"format": "pt", "fsgen_hub_version": __version__})
        write_json(save_directory / CONFIG_NAME, self.config_dict(config))

    def save_pretrained(  # type: ignore[override]
        self,
        save_directory: str | os.PathLike,
        *,
        discriminator: HubModel | None = None,
        lineage: dict | None = None,
        config: dict | ModelConfig | None = None,
        repo_id: str | None = None,
        push_to_hub: bool = False,
        model_card_kwargs: dict[str, Any] | None = None,
        **push_to_hub_kwargs,
    ) -> str | None:
        """Write config.json + model.safetensors (+ ``discriminator/`` and lineage.json when given) and the card.

        The card (README.md) is the one ``fsgen push`` writes (``generate_model_card``); an existing
        card edited by hand is kept. With ``push_to_hub=True`` the folder is then published like
        ``fsgen push DIR REPO_ID`` (``repo_id`` defaults to the folder name; ``private``, ``branch``,
        ``create_pr``, ``token``, ``commit_message`` as in ``push_to_hub``); returns the commit URL.
        """
        from fsgen_hub.utils.io import write_json

        save_directory = Path(save_directory)
        save_directory.mkdir(parents=True, exist_ok=True)
        self._save_pretrained(save_directory, self._config_for_save(config))
        if discriminator is not None:
            sub = save_directory / DISCRIMINATOR_SUBFOLDER
            sub.mkdir(exist_ok=True)
            discriminator._save_pretrained(sub)
        if lineage is not None:
            write_json(save_directory / LINEAGE_NAME, lineage)
        if self.role == "generator":  # a card describes a generator folder (its D is a subfolder of it)
            refresh_model_card(save_directory, repo_id, card_kwargs=model_card_kwargs)
        if push_to_hub:
            return _push_folder(save_directory, repo_id or save_directory.name, model_card_kwargs, **push_to_hub_kwargs)
        return None

    def generate_model_card(self, *args, model_dir: str | os.PathLike | None = None, repo_id: str | None = None,
                            **model_card_kwargs):
        """The mixin's card hook: the card ``fsgen push`` writes, rendered from ``model_dir`` (default: a
        temporary save of this model). ``model_card_kwargs``: extra ``tags``, ``datasets``, ``language``,
        or a ``license`` id that replaces the inherited one."""
        import tempfile

        from huggingface_hub import ModelCard

        if model_dir is None:
            with tempfile.TemporaryDirectory() as tmp:
                self._save_pretrained(Path(tmp))
                return ModelCard(render_model_card(tmp, repo_id=repo_id, card_kwargs=model_card_kwargs))
        return ModelCard(render_model_card(model_dir, repo_id=repo_id, card_kwargs=model_card_kwargs))

    def push_to_hub(  # type: ignore[override]
        self,
        repo_id: str,
        *,
        config: dict | ModelConfig | None = None,
        commit_message: str | None = None,
        private: bool | None = None,
        token: str | None = None,
        branch: str | None = None,
        create_pr: bool | None = None,
        model_card_kwargs: dict[str, Any] | None = None,
        discriminator: HubModel | None = None,
        lineage: dict | None = None,
    ) -> str:
        """Publish this model like ``fsgen push``: weights, card, and — when the model was loaded from a
        folder and its weights are unchanged — that folder's discriminator, lineage, metrics and images.

        One commit through ``fsgen_hub.publish.push_folder``; returns the commit URL (a ``CommitInfo``,
        whose ``pr_url`` is set with ``create_pr=True``), as the mixin does.
        """
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp) / (repo_id.split("/")[-1] or "model")
            folder.mkdir()
            self._copy_companions(folder, keep_discriminator=discriminator is None, keep_lineage=lineage is None)
            self.save_pretrained(folder, discriminator=discriminator, lineage=lineage, config=config,
                                 model_card_kwargs=model_card_kwargs)
            return _push_folder(folder, repo_id, model_card_kwargs, private=private, token=token, branch=branch,
                                create_pr=create_pr, commit_message=commit_message)

    def _copy_companions(self, folder: Path, keep_discriminator: bool, keep_lineage: bool) -> None:
        """Copy what accompanies these weights in the folder they were loaded from (the files ``fsgen push``
        would publish), but only while the weights are still those of the folder: otherwise its metrics,
        samples and lineage would describe another model."""
        import shutil

        source = Path((getattr(self, "source_info", None) or {}).get("local_dir") or "")
        if self.role != "generator" or not source.is_dir() or not self._same_weights_as(source / WEIGHTS_NAME):
            return
        for rel, path in publishable_files(source):
            top = rel.split("/")[0]
            if rel in (CONFIG_NAME, WEIGHTS_NAME) or (top == DISCRIMINATOR_SUBFOLDER and not keep_discriminator) \
                    or (rel == LINEAGE_NAME and not keep_lineage) \
                    or (rel == CARD_NAME and is_unedited_generated_card(path)):  # a generated card is re-rendered
                continue
            (folder / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, folder / rel)

    def _same_weights_as(self, weights_file: Path) -> bool:
        from safetensors.torch import load_file

        try:
            saved = load_file(str(weights_file))
        except Exception:  # noqa: BLE001 - a missing or unreadable file simply is not the same weights
            return False
        own = self.state_dict()
        return saved.keys() == own.keys() and all(
            saved[k].shape == own[k].shape and torch.equal(saved[k], own[k].detach().cpu().to(saved[k].dtype))
            for k in own
        )

    # ------------------------------------------------------------------ loading
    @classmethod
    def from_pretrained(  # type: ignore[override]
        cls: type[T],
        pretrained_model_name_or_path: str | os.PathLike,
        *,
        revision: str | None = None,
        cache_dir: str | os.PathLike | None = None,
        force_download: bool = False,
        token: str | bool | None = None,
        local_files_only: bool = False,
        map_location: str | torch.device = "cpu",
        subfolder: str = "",
        strict: bool = True,
        torch_dtype: torch.dtype | str | None = None,
    ) -> T:
        """Load from a local folder, a zoo id or a hub repo id; weights must match the config exactly.

        ``torch_dtype`` (diffusers/transformers convention): cast the parameters, e.g. ``torch.float16``
        or ``"bfloat16"``; ``sample()`` feeds latents in the same dtype. Default: as stored (float32).
        """
        dtype = _parse_dtype(torch_dtype)
        hub_kwargs = {"subfolder": subfolder, "revision": revision, "cache_dir": cache_dir,
                      "force_download": force_download, "token": token, "local_files_only": local_files_only}
        files = cls.resolve_files(pretrained_model_name_or_path, [CONFIG_NAME, WEIGHTS_NAME], **hub_kwargs)
        config = read_config(files[CONFIG_NAME])
        target = cls
        if cls.architecture == "":  # Auto class: dispatch on config.json
            target = model_class(config.get("architecture"), cls.role or config.get("role", "generator"))
        elif config.get("architecture") not in (None, cls.architecture):
            raise CheckpointError(
                f"{files[CONFIG_NAME]} is a {config.get('architecture')!r} model, not {cls.architecture!r}: "
                "load it with AutoGenerator.from_pretrained"
            )
        model = target(target.config_class.from_dict(config))
        load_weights(model, files[WEIGHTS_NAME], strict=strict)
        model.to(map_location)
        if dtype is not None:
            model.to(dtype=dtype)
        model.eval()
        model.source_info = {
            "model_id": str(pretrained_model_name_or_path),
            "revision": revision,
            "commit": commit_from_cache_path(files[CONFIG_NAME]),
            "local_dir": str(Path(files[CONFIG_NAME]).parent),
        }
        return model

    @classmethod
    def resolve_files(cls, model_id: str | os.PathLike, filenames: list[str], **hub_kwargs) -> dict[str, str]:
        """Local paths of ``filenames`` for ``model_id``: a folder or a hub repo id (``fsgen_hub.auto`` adds zoo ids)."""
        return resolve_model_files(model_id, filenames, **hub_kwargs)


def _parse_dtype(torch_dtype) -> torch.dtype | None:
    if torch_dtype is None or torch_dtype == "auto":  # "auto": as stored, like transformers
        return None
    if isinstance(torch_dtype, torch.dtype):
        dtype = torch_dtype
    else:
        dtype = getattr(torch, str(torch_dtype).replace("torch.", ""), None)
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise FsgenError(f"torch_dtype={torch_dtype!r} is not a floating-point torch dtype: use e.g. torch.float16, "
                         "'bfloat16' or 'float32'")
    return dtype


def _push_folder(folder: Path, repo_id: str, model_card_kwargs: dict | None, *, private=None, token=None,
                 branch=None, create_pr=None, commit_message=None, **unknown):
    """The mixin's push arguments mapped onto ``fsgen push`` (fsgen_hub.publish.push_folder)."""
    if unknown:
        raise FsgenError(
            f"push_to_hub got unsupported argument(s) {', '.join(sorted(unknown))}: it takes private, token, "
            "branch, create_pr and commit_message (the published files are those `fsgen push` selects)"
        )
    return push_folder(folder, repo_id, private=bool(private), revision=branch, token=token,
                       commit_message=commit_message, create_pr=bool(create_pr), card_kwargs=model_card_kwargs,
                       return_commit=True)


def register_model(model_class: type[HubModel]) -> type[HubModel]:
    """Make ``model_class`` what ``config.json`` files of its (architecture, role) load as; a name is taken once."""
    key = (model_class.architecture, model_class.role)
    if not all(key):
        raise FsgenError(f"{model_class.__name__} needs a class-level architecture and role to be registered")
    if key in _MODEL_CLASSES and _MODEL_CLASSES[key] is not model_class:
        raise FsgenError(f"a {key[0]} {key[1]} is already registered ({_MODEL_CLASSES[key].__name__}): "
                         f"give {model_class.__name__} another architecture name")
    _MODEL_CLASSES[key] = model_class
    return model_class


def list_architectures() -> list[str]:
    return sorted({architecture for architecture, _ in _MODEL_CLASSES})


def model_class(architecture: str | None, role: str = "generator") -> type[HubModel]:
    """The registered class for a config.json's ``architecture`` and ``role``; a one-line CheckpointError otherwise."""
    if architecture not in list_architectures():
        raise CheckpointError(
            f"unknown architecture {architecture!r} in config.json; known: {', '.join(list_architectures())}"
        )
    try:
        return _MODEL_CLASSES[(architecture, role)]
    except KeyError:
        raise CheckpointError(f"fsgen_hub has no {architecture} {role} class") from None


def local_role(path: Path) -> str | None:
    """The ``role`` a local folder's config.json declares, or None."""
    try:
        return json.loads((path / CONFIG_NAME).read_text()).get("role")
    except (OSError, ValueError):
        return None


FLOAT_DTYPES = frozenset({"F16", "BF16", "F32", "F64"})


def load_weights(model: torch.nn.Module, weights_file: str | os.PathLike, strict: bool = True) -> None:
    """Load a safetensors file into ``model`` with one-line errors.

    Names, shapes and dtypes are compared with the model from the file's header before any tensor is read,
    so a file that declares other (or huge) tensors is refused without allocating them.
    """
    from safetensors import SafetensorError, safe_open

    own = model.state_dict()
    try:
        with safe_open(str(weights_file), framework="pt") as f:
            header = {key: (f.get_slice(key).get_shape(), f.get_slice(key).get_dtype()) for key in f.keys()}
            missing = [k for k in own if k not in header]
            unexpected = [k for k in header if k not in own]
            if strict and (missing or unexpected):
                raise CheckpointError(
                    f"{weights_file} does not match its config.json: missing {missing[:3]}{'...' if len(missing) > 3 else ''}, "
                    f"unexpected {unexpected[:3]}{'...' if len(unexpected) > 3 else ''}"
                )
            for key, (shape, dtype) in header.items():
                if key not in own:
                    continue
                if tuple(own[key].shape) != tuple(shape):
                    raise CheckpointError(
                        f"{weights_file}: tensor {key} has shape {tuple(shape)} but config.json implies "
                        f"{tuple(own[key].shape)}; the config and the weights come from different models"
                    )
                if own[key].is_floating_point() != (dtype in FLOAT_DTYPES):
                    raise CheckpointError(f"{weights_file}: tensor {key} is stored as {dtype}, which does not fit "
                                          f"{own[key].dtype}: the file is corrupt or not an fsgen_hub model")
            state = {key: f.get_tensor(key) for key in header if key in own}
    except CheckpointError:
        raise
    except (SafetensorError, OSError, ValueError, RuntimeError, MemoryError, TypeError) as exc:
        raise CheckpointError(
            f"cannot read {weights_file}: {str(exc).splitlines()[0][:160]} (truncated or corrupt download? delete it and retry)"
        ) from None
    model.load_state_dict(state, strict=strict)
