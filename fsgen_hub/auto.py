"""``AutoGenerator`` / ``AutoDiscriminator`` (diffusers' ``models/auto_model.py``): one entry point for every id.

``AutoGenerator.from_pretrained(id_or_dir)`` resolves a local folder, a zoo id (``fsgen_hub.zoo``) or a hub
repo id, reads ``config.json`` and returns the registered class for its ``architecture``
(``fsgen_hub.models.modeling_utils.model_class``). A folder holding an adapter (``adapter_config.json``, no
``config.json``) loads its recorded base model and merges the delta onto it (``load_delta`` + ``merge``).
"""
from __future__ import annotations

import os
from pathlib import Path

from torch import nn

from fsgen_hub.methods.adapters import apply_delta, merge, read_delta_config, recorded_base, recorded_base_id
from fsgen_hub.models.modeling_utils import HubModel, _parse_dtype, local_role
from fsgen_hub.utils.constants import ADAPTER_CONFIG_NAME, ADAPTER_WEIGHTS_NAME, DISCRIMINATOR_SUBFOLDER
from fsgen_hub.utils.errors import FsgenError, ModelNotFoundError
from fsgen_hub.zoo import resolve_model_files

HUB_KWARGS = ("subfolder", "revision", "cache_dir", "force_download", "token", "local_files_only")


class _AutoModel(HubModel):
    """Dispatch only: ``from_pretrained`` returns the class the folder's config names; zoo ids resolve too."""

    def __init__(self, *args, **kwargs):  # pragma: no cover - never instantiated
        name = type(self).__name__
        raise TypeError(f"{name} is not instantiable: use {name}.from_pretrained(...)")

    @classmethod
    def resolve_files(cls, model_id, filenames, **hub_kwargs) -> dict[str, str]:
        return resolve_model_files(model_id, filenames, **hub_kwargs)


class AutoGenerator(_AutoModel):
    """``AutoGenerator.from_pretrained(id_or_dir)`` returns the right generator class for the folder."""

    role = "generator"

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, **kwargs):  # type: ignore[override]
        try:
            return super().from_pretrained(pretrained_model_name_or_path, **kwargs)
        except ModelNotFoundError:  # no config.json: an adapter folder, or nothing loadable
            merged = _load_adapter_folder(pretrained_model_name_or_path, kwargs)
            if merged is None:
                raise
            dtype = _parse_dtype(kwargs.get("torch_dtype"))
            map_location = kwargs.get("map_location", "cpu")
            return merged.to(map_location, dtype=dtype) if dtype is not None else merged.to(map_location)


class AutoDiscriminator(_AutoModel):
    """``AutoDiscriminator.from_pretrained(dir)`` loads ``dir/discriminator`` (or ``dir`` if it is one)."""

    role = "discriminator"

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *, subfolder: str | None = None, **kwargs):  # type: ignore[override]
        path = Path(str(pretrained_model_name_or_path))
        if subfolder is None:
            is_disc_folder = path.is_dir() and local_role(path) == "discriminator"
            subfolder = "" if is_disc_folder else DISCRIMINATOR_SUBFOLDER
        return super().from_pretrained(pretrained_model_name_or_path, subfolder=subfolder, **kwargs)


def _load_adapter_folder(model_id, kwargs: dict) -> nn.Module | None:
    """The merged generator of an adapter folder (adapter_config.json, no config.json); else None."""
    hub_kwargs = {k: kwargs[k] for k in HUB_KWARGS if k in kwargs}
    try:
        resolve_model_files(model_id, [ADAPTER_CONFIG_NAME], **hub_kwargs)
    except FsgenError:
        return None
    return merge(load_delta(model_id, **hub_kwargs))


def load_delta(folder_or_id, base: nn.Module | str | None = None, *, subfolder: str = "", revision: str | None = None,
               cache_dir: str | os.PathLike | None = None, force_download: bool = False, token=None,
               local_files_only: bool = False) -> nn.Module:
    """The base generator with the delta applied (parametrized; ``merge`` it for a plain generator).

    ``base``: a generator, an id, or None for the id recorded in ``adapter_config.json``. The base's weights
    must be the ones the delta was trained on (digest check, ``fsgen_hub.methods.adapters.apply_delta``).
    """
    files = resolve_model_files(folder_or_id, [ADAPTER_CONFIG_NAME, ADAPTER_WEIGHTS_NAME], subfolder=subfolder,
                                revision=revision, cache_dir=cache_dir, force_download=force_download, token=token,
                                local_files_only=local_files_only)
    config_path = files[ADAPTER_CONFIG_NAME]
    config = read_delta_config(config_path)
    recorded = recorded_base(config, config_path)
    if base is None or isinstance(base, (str, Path)):
        base_id = str(base) if base is not None else recorded_base_id(recorded, folder_or_id, config_path)
        base = AutoGenerator.from_pretrained(base_id, revision=recorded.get("revision") if base is None else None,
                                             cache_dir=cache_dir, token=token, local_files_only=local_files_only)
    model = apply_delta(base, config, files[ADAPTER_WEIGHTS_NAME], config_path=config_path)
    model.source_info = {"model_id": str(folder_or_id), "revision": revision, "commit": None,
                         "local_dir": str(Path(config_path).parent), "base_model": recorded}
    return model
