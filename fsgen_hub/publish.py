"""The one push path: ``fsgen push``, ``--push-to-hub``, ``HubModel.push_to_hub`` and
``save_pretrained(push_to_hub=True)`` all end in ``push_folder``.

``push_folder(dir, repo_id)`` uploads the publishable files (``publishable_files``: not ``checkpoint-*``,
``logs/``, ``grids/``, dot-files or temporary files) in ONE commit through ``HfApi.create_commit``, and
turns every huggingface_hub/network failure into a one-line ``FsgenError`` that never contains the token.
"""
from __future__ import annotations

import contextlib
import importlib
import json
import logging
import os
import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

from fsgen_hub.cards import refresh_model_card
from fsgen_hub.folder import read_model_folder
from fsgen_hub.utils.constants import (
    ADAPTER_CONFIG_NAME,
    ADAPTER_SUBFOLDER,
    ADAPTER_WEIGHTS_NAME,
    CARD_NAME,
    CONFIG_NAME,
    DISCRIMINATOR_SUBFOLDER,
    LINEAGE_NAME,
    METRICS_NAME,
    PRUNING_NAME,
    WEIGHTS_NAME,
    __version__,
)
from fsgen_hub.utils.errors import FsgenError, OfflineError

logger = logging.getLogger(__name__)

# Run-folder content that is never published (CONTRACTS.md: a run folder is a model folder plus these).
# What a model folder publishes: an allow-list, so that whatever else lies in a run folder (checkpoints,
# logs, TensorBoard/W&B runs, .pt files, notes) stays local whatever it is called.
PUBLISHED_FILES = frozenset({CONFIG_NAME, WEIGHTS_NAME, CARD_NAME, LINEAGE_NAME, METRICS_NAME, PRUNING_NAME})
PUBLISHED_SUBFOLDER_FILES = {
    DISCRIMINATOR_SUBFOLDER: frozenset({CONFIG_NAME, WEIGHTS_NAME}),
    ADAPTER_SUBFOLDER: frozenset({ADAPTER_CONFIG_NAME, ADAPTER_WEIGHTS_NAME}),
}
PUBLISHED_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
ARTIFACT_SUFFIXES = (".json", ".safetensors", *PUBLISHED_IMAGE_SUFFIXES)  # method files named in the lineage

_TOKEN_RE = re.compile(r"\bhf_[A-Za-z0-9]{8,}")


def publishable_files(model_dir: str | os.PathLike) -> list[tuple[str, Path]]:
    """(path in repo, local path) of what a model folder publishes, sorted: the one place that decides it
    (``fsgen push``, ``push_folder`` and ``push_to_hub`` all upload exactly this list).

    Allowed: the weights and configs (generator, ``discriminator/``, ``adapter/``), the card, lineage,
    metrics, pruning record, top-level images, and method files the lineage names as artifacts. Symbolic
    links are never followed (a link to a file outside the folder would publish that file).
    """
    model_dir = Path(model_dir)
    root = model_dir.resolve()

    def regular(path: Path) -> bool:
        # no symlink anywhere between the folder and the file, and the file really inside the folder
        return (path.is_file() and not path.is_symlink() and not path.parent.is_symlink()
                and path.resolve().is_relative_to(root))

    allowed = set(PUBLISHED_FILES)
    lineage_path = model_dir / LINEAGE_NAME
    if regular(lineage_path):
        with contextlib.suppress(OSError, ValueError):
            artifacts = (json.loads(lineage_path.read_text(encoding="utf-8")) or {}).get("artifacts") or {}
            allowed |= {v for v in artifacts.values() if isinstance(v, str) and "/" not in v and "\\" not in v
                        and not v.startswith(".") and v.endswith(ARTIFACT_SUFFIXES)}
    out = []
    for path in sorted(model_dir.iterdir()) if model_dir.is_dir() else []:
        if path.name in allowed or (path.suffix.lower() in PUBLISHED_IMAGE_SUFFIXES and not path.name.startswith(".")):
            if regular(path):
                out.append((path.name, path))
    for sub, names in sorted(PUBLISHED_SUBFOLDER_FILES.items()):
        folder = model_dir / sub
        if folder.is_dir() and not folder.is_symlink():
            out += [(f"{sub}/{name}", folder / name) for name in sorted(names) if regular(folder / name)]
    return sorted(out)


def _secrets(token: str | None) -> list[str]:
    """Tokens that must not leak: the one passed and the one huggingface_hub would use by itself."""
    found = [token] if token else []
    with contextlib.suppress(Exception):  # a broken token store must not stop a push that passes a token
        from huggingface_hub import get_token

        stored = get_token()
        if stored and stored not in found:
            found.append(stored)
    return [t for t in found if len(t) >= 8]  # too short to scan for without false alarms


def scrub(text: str, secrets: list[str] | tuple[str, ...] = ()) -> str:
    """``text`` without the given secrets, bearer credentials or anything shaped like a hub token."""
    for secret in secrets:
        text = text.replace(secret, "***")
    text = re.sub(r"(?i)(bearer\s+)\S+", r"\1***", text)
    return _TOKEN_RE.sub("hf_***", text)


def _file_contains(path: Path, needle: bytes, chunk: int = 1 << 22) -> bool:
    overlap = len(needle) - 1
    with open(path, "rb") as f:
        tail = b""
        while block := f.read(chunk):
            if needle in tail + block:
                return True
            tail = block[-overlap:] if overlap else b""
    return False


def _transport_errors() -> tuple[type[BaseException], ...]:
    """Network failures: huggingface_hub 2.x raises httpx2's, older versions httpx's or requests'."""
    classes: list[type[BaseException]] = [ConnectionError, TimeoutError]
    for module, name in (("httpx2", "TransportError"), ("httpx", "TransportError"),
                         ("requests", "ConnectionError"), ("requests", "Timeout")):
        with contextlib.suppress(ImportError, AttributeError):
            classes.append(getattr(importlib.import_module(module), name))
    return tuple(classes)


@contextlib.contextmanager
def _hub_errors(step: str, repo_id: str, secrets: list[str]) -> Iterator[None]:
    """Turn what huggingface_hub or the network raises during ``step`` into a one-line FsgenError."""
    from huggingface_hub import constants
    from huggingface_hub import errors as hf_errors

    endpoint = constants.ENDPOINT

    def first_line(exc: BaseException) -> str:
        text = getattr(exc, "server_message", None) or str(exc)
        lines = [line.strip() for line in str(text).splitlines() if line.strip()]
        return scrub(lines[0] if lines else type(exc).__name__, secrets)[:200]

    nothing = "nothing was published"
    try:
        yield
    except hf_errors.OfflineModeIsEnabled:
        raise OfflineError("the hub is in offline mode (HF_HUB_OFFLINE=1): unset it to push") from None
    except hf_errors.HfHubHTTPError as exc:
        response = getattr(exc, "response", None)
        status = getattr(response, "status_code", None)
        if status == 401:
            raise FsgenError(
                f"the hub at {endpoint} refused the credentials while {step} (401): pass --token, set HF_TOKEN "
                "or run `hf auth login` with a write token"
            ) from None
        if status == 403:
            raise FsgenError(
                f"the token may not write to {repo_id!r} (403 while {step}): use a write token of that user or "
                "organisation, or push to your own namespace"
            ) from None
        if isinstance(exc, hf_errors.RevisionNotFoundError):
            raise FsgenError(f"{repo_id!r} has no such branch ({step}): check --revision") from None
        if isinstance(exc, hf_errors.RepositoryNotFoundError) or status == 404:
            raise FsgenError(
                f"the hub has no repo {repo_id!r} visible to this token (404 while {step}): check the repo id and "
                "the token's namespace"
            ) from None
        if status is not None and status >= 500:
            raise FsgenError(
                f"the hub at {endpoint} failed with HTTP {status} while {step} ({first_line(exc)}); {nothing} "
                "(a commit is all-or-nothing): retry later"
            ) from None
        raise FsgenError(f"the hub refused {step} for {repo_id!r} (HTTP {status}: {first_line(exc)})") from None
    except hf_errors.HFValidationError as exc:
        raise FsgenError(f"invalid hub argument while {step}: {first_line(exc)}") from None
    except ValueError as exc:  # create_commit raises ValueError when the hub rejects README.md's metadata
        if "metadata" in str(exc).lower():
            details = [line.lstrip("- ").strip() for line in str(exc).splitlines()[1:] if line.strip()]
            why = scrub("; ".join(details) or str(exc).splitlines()[0], secrets)[:300]
            raise FsgenError(
                f"the hub rejected the metadata of README.md ({why}); {nothing}: fix the card, or delete it and "
                "run `fsgen push` to regenerate it"
            ) from None
        raise FsgenError(f"unexpected answer from the hub at {endpoint} while {step}: {first_line(exc)}") from None
    except _transport_errors() as exc:
        raise OfflineError(
            f"cannot reach the hub at {endpoint} while {step} ({type(exc).__name__}: {first_line(exc)}); {nothing}: "
            "check the network, or HF_ENDPOINT if you use a mirror"
        ) from None


def push_folder(
    model_dir: str | os.PathLike,
    repo_id: str,
    *,
    private: bool = False,
    revision: str | None = None,
    token: str | None = None,
    commit_message: str | None = None,
    create_pr: bool = False,
    card_kwargs: dict | None = None,
    return_commit: bool = False,
):
    """Publish a model folder (with its README.md card) to ``repo_id`` in one commit; returns the repo URL.

    The repo is created when missing (``private`` only applies then); ``revision`` names a branch,
    created from main when missing. An unedited generated card is regenerated first so that its
    usage snippet names ``repo_id``; an edited card is uploaded as it is. ``create_pr`` opens a pull
    request against ``revision`` (default main) instead of committing to it; the URL returned is then
    the pull request's. ``return_commit``: return huggingface_hub's ``CommitInfo`` instead (the
    mixin's ``push_to_hub`` contract: a str equal to the commit URL, with ``pr_url``).
    """
    from huggingface_hub import CommitOperationAdd, HfApi, constants
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    model_dir = Path(model_dir)
    read_model_folder(model_dir)
    if not (model_dir / CARD_NAME).is_file():
        raise FsgenError(
            f"{model_dir} has no {CARD_NAME} model card: run `fsgen push` (it writes one) or call "
            "fsgen_hub.cards.write_model_card first"
        )
    try:
        validate_repo_id(repo_id)
    except HFValidationError:
        raise FsgenError(
            f"{repo_id!r} is not a hub repo id: use NAMESPACE/NAME (letters, digits, '-', '_', '.')"
        ) from None
    if constants.is_offline_mode():
        raise OfflineError("the hub is in offline mode (HF_HUB_OFFLINE=1): unset it to push")
    secrets = _secrets(token)
    if refresh_model_card(model_dir, repo_id, card_kwargs=card_kwargs) == "kept":
        logger.info("%s was edited by hand: pushing it as it is (delete it to regenerate it)", model_dir / CARD_NAME)
    files = publishable_files(model_dir)
    for rel, path in files:  # defensive: a token inside a published file would be public forever
        if any(_file_contains(path, secret.encode()) for secret in secrets):
            raise FsgenError(f"{rel} contains a hub token: remove it (and revoke the token) before pushing")
    lineage = json.loads((model_dir / LINEAGE_NAME).read_text()) if (model_dir / LINEAGE_NAME).is_file() else {}
    message = commit_message or _default_message(lineage)

    api = HfApi(token=token)
    with _hub_errors("creating the repo", repo_id, secrets):
        url = api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
    full_id = url.repo_id or repo_id  # a bare NAME lands in the token's namespace: commit there
    if revision and revision != constants.DEFAULT_REVISION and not create_pr:  # a PR targets an existing branch
        with _hub_errors(f"creating branch {revision!r}", full_id, secrets):
            api.create_branch(full_id, branch=revision, exist_ok=True, repo_type="model")
    operations = [CommitOperationAdd(path_in_repo=rel, path_or_fileobj=str(path)) for rel, path in files]
    logger.info("pushing %d files of %s to %s%s", len(files), model_dir, full_id, f" ({revision})" if revision else "")
    # create_commit rather than upload_folder: with hf_xet installed upload_folder may split a folder into
    # several commits and retries failed commits, whereas a model must appear whole or not at all.
    with _hub_errors("uploading the files", full_id, secrets):
        commit = api.create_commit(full_id, operations, commit_message=message, revision=revision,
                                   repo_type="model", create_pr=create_pr or None)
    if return_commit:
        return commit
    if create_pr and commit.pr_url:
        return commit.pr_url
    base_url = str(url).rstrip("/")
    return f"{base_url}/tree/{quote(revision, safe='')}" if revision else base_url


def _default_message(lineage: dict) -> str:
    kind = lineage.get("kind")
    method = (lineage.get("method") or {}).get("name")
    base = (lineage.get("base_model") or {}).get("id")
    if kind == "adapted" and method:
        what = f"{method} adaptation of {Path(str(base)).name if base else 'a base model'}"
    else:
        what = f"{kind} model" if kind else "model"
    return f"Upload {what} (fsgen_hub {__version__})"
