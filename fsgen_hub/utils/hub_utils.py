"""Hub file resolution (diffusers' ``utils/hub_utils.py``): a local folder or a hub repo id → local file paths.

Every download goes through ``hub_download``, which turns what huggingface_hub raises into one-line errors.
Zoo ids are resolved one layer up (``fsgen_hub.zoo.resolve_model_files``), which passes the known ids here
so that an unknown id's error can suggest close ones.
"""
from __future__ import annotations

import difflib
import os
from collections.abc import Iterable
from pathlib import Path

from fsgen_hub.utils.constants import CONFIG_NAME, WEIGHTS_NAME
from fsgen_hub.utils.errors import FsgenError, ModelNotFoundError, OfflineError


def resolve_model_files(
    model_id: str | os.PathLike,
    filenames: list[str],
    *,
    subfolder: str = "",
    revision: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    force_download: bool = False,
    token: str | bool | None = None,
    local_files_only: bool = False,
    local_dir: str | os.PathLike | None = None,
    known_ids: Iterable[str] = (),
) -> dict[str, str]:
    """Return local paths of ``filenames`` for a folder or hub repo id; clear errors otherwise.

    ``local_dir``: the folder that stands for ``model_id`` (a zoo id's, found by the caller); ``known_ids``:
    ids an unknown one is compared with for a "Did you mean" hint.
    """
    model_id = str(model_id)
    local = Path(local_dir) if local_dir is not None else Path(model_id).expanduser()
    if local.is_dir():
        base = local / subfolder if subfolder else local
        out = {}
        for name in filenames:
            path = base / name
            if not path.is_file():
                raise ModelNotFoundError(f"{path} is missing: {local} is not a complete fsgen_hub model folder")
            out[name] = str(path)
        return out
    if looks_like_path(model_id):
        raise ModelNotFoundError(f"no model folder at {model_id}")
    return {
        name: hub_download(model_id, name, subfolder, revision, cache_dir, force_download, token, local_files_only,
                           known_ids=known_ids)
        for name in filenames
    }


def looks_like_path(model_id: str) -> bool:
    """Hub ids are ``name`` or ``org/name``; anything else is meant as a filesystem path."""
    return model_id.startswith((".", "/", "~")) or model_id.count("/") > 1 or "\\" in model_id


def close_names(model_id: str, known_ids: Iterable[str]) -> str:
    """A "Did you mean" hint naming known ids close to ``model_id`` ("" when there are none to compare with)."""
    names = list(known_ids)
    if not names:
        return ""
    close = difflib.get_close_matches(model_id, names, n=3, cutoff=0.5)
    return f" Did you mean: {', '.join(close)}?" if close else " Known zoo ids: `fsgen zoo`."


def hub_download(model_id, filename, subfolder="", revision=None, cache_dir=None, force_download=False, token=None,
                 local_files_only=False, *, known_ids: Iterable[str] = ()) -> str:
    """``hf_hub_download`` with one-line errors (offline, unknown repo/revision/file, network)."""
    from huggingface_hub import constants, hf_hub_download
    from huggingface_hub import errors as hf_errors

    where = f"'{model_id}'" + (f" (revision {revision})" if revision else "")
    try:
        return hf_hub_download(
            repo_id=model_id,
            filename=filename,
            subfolder=subfolder or None,
            revision=revision,
            cache_dir=cache_dir,
            force_download=force_download,
            token=token,
            local_files_only=local_files_only,
        )
    # LocalEntryNotFoundError is a subclass of EntryNotFoundError: catch it first
    except (hf_errors.LocalEntryNotFoundError, hf_errors.OfflineModeIsEnabled):
        offline = constants.HF_HUB_OFFLINE or local_files_only
        why = "the hub is offline (HF_HUB_OFFLINE=1)" if offline else f"the hub at {constants.ENDPOINT} cannot be reached"
        raise OfflineError(
            f"model {where} is not a local folder or zoo id, not in the local cache, and {why}: "
            f"download it where there is network or pass a local folder.{close_names(model_id, known_ids)}"
        ) from None
    except hf_errors.HFValidationError:
        raise ModelNotFoundError(
            f"unknown model {model_id!r}: not a local folder, not a zoo id, not a valid hub repo id.{close_names(model_id, known_ids)}"
        ) from None
    except hf_errors.RepositoryNotFoundError:
        raise ModelNotFoundError(
            f"unknown model {where}: not a local folder, not a zoo id, and the hub has no such repo (private? pass a token)."
            f"{close_names(model_id, known_ids)}"
        ) from None
    except hf_errors.RevisionNotFoundError:
        raise ModelNotFoundError(f"model {model_id!r} has no revision {revision!r} on the hub") from None
    except hf_errors.EntryNotFoundError:
        path = f"{subfolder}/{filename}" if subfolder else filename
        what = ": it is not an fsgen_hub model" if filename in (CONFIG_NAME, WEIGHTS_NAME) else ""
        raise ModelNotFoundError(f"hub repo {where} has no {path}{what}") from None
    except hf_errors.HfHubHTTPError as exc:
        raise FsgenError(f"hub error while fetching {model_id}/{filename}: {str(exc).splitlines()[0]}") from None
    except OSError as exc:  # connection errors surface as OSError subclasses
        raise OfflineError(
            f"cannot reach the hub at {constants.ENDPOINT} for {where} ({type(exc).__name__}); "
            "use a local folder or set HF_HUB_OFFLINE=1 to use the cache"
        ) from None


def commit_from_cache_path(path: str) -> str | None:
    parts = Path(path).parts
    if "snapshots" in parts:
        i = parts.index("snapshots")
        if i + 1 < len(parts):
            return parts[i + 1]
    return None
