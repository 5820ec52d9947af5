"""The Gradio app shared by ``fsgen demo`` and the Space in ``spaces_app/``.

The handlers (``generate``, ``compare``, ``interpolate``, ``model_info``) are plain functions that
raise ``FsgenError`` on bad input; ``build_app`` wraps them so the message shows in the UI.

Trust model (the app is meant to face strangers):

- it serves the models it was started with (the picker: ``fsgen demo MODEL ...`` / ``FSGEN_MODELS``) and,
  only when ``allow_custom`` (``--allow-custom`` / ``FSGEN_ALLOW_CUSTOM=1``), public hub repos typed as
  ``namespace/name`` or zoo ids. A typed local path is never opened, and typed ids are fetched from the
  hub with no token (the Space's own ``HF_TOKEN`` would open its owner's private repos to anyone).
- a model's source (for "source vs adapted") comes from its lineage: a hub or zoo id, or, for a listed
  local folder, the path relative to it that the trainer recorded, checked against the recorded digest.
- visitors see messages written for them (``VisitorError``); any other failure shows one generic line
  and its details (paths, hub answers) go to the server log.
- sizes are bounded as everywhere in fsgen_hub (config fields, parameter budget, safetensors header), plus
  a cap on the weights a typed id may download; each model is loaded once however many requests ask for
  it at the same time; grid files are kept in one temporary folder, the oldest deleted.
"""
from __future__ import annotations

import logging
import math
import os
import re
import shutil
import tempfile
import threading
import weakref
from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch

from fsgen_hub.folder import ModelFolder, parse_model_files, weights_sha256
from fsgen_hub.utils.constants import CONFIG_NAME, LINEAGE_NAME, METRICS_NAME, WEIGHTS_NAME
from fsgen_hub.utils.errors import FsgenError
from fsgen_hub.utils.io import file_sha256

logger = logging.getLogger(__name__)

MAX_IMAGES = 16
MAX_INTERPOLATION_STEPS = 12
MAX_SEED = 2**31 - 1
CACHE_SIZE = 4
MAX_INFO_FILE_BYTES = 1 << 20       # lineage.json / metrics.jsonl read for the info panel
MAX_TYPED_WEIGHTS_BYTES = 256 << 20  # model.safetensors of a typed hub id
MAX_GRID_FILES = 64
GENERIC_ERROR = "this model cannot be shown here (the details are in the server log)"
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]{0,95}/[\w.-]{1,96}$")


class VisitorError(FsgenError):
    """A message written for whoever uses the app: it reveals nothing about the server."""


def is_public_hub_id(value: str) -> bool:
    return bool(_HUB_ID.match(value)) and ".." not in value and not value.endswith(".git")


def _zoo_ids() -> set[str]:
    try:
        from fsgen_hub.zoo import ZOO
    except ImportError:
        return set()
    return set(ZOO)


def _shown(value: Any) -> str:
    """An id as visitors see it: hub and zoo ids as they are, local paths by their last component."""
    text = str(value)
    if is_public_hub_id(text) and not Path(text).exists():
        return text
    return re.split(r"[\\/]", text.rstrip("\\/"))[-1] or text



def default_models() -> list[str]:
    try:
        from fsgen_hub.zoo import DEFAULT_SOURCE

        return [DEFAULT_SOURCE]
    except ImportError:  # zoo not installed in a trimmed build
        return []


def pick_device(device: str | None = None) -> torch.device:
    if device and device != "auto":
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


class ModelCache:
    """Generators the app may serve, loaded once per id (bounded LRU, thread-safe: Gradio runs handlers in
    threads, and concurrent requests for one model wait for a single load).

    ``models``: the listed ids (local folders, zoo or hub ids; opened like ``from_pretrained`` with the
    ambient token). ``allow_custom``: also public hub ids and zoo ids typed by visitors, fetched without a token.
    """

    def __init__(self, models: list[str] | tuple[str, ...] = (), *, allow_custom: bool = False,
                 size: int = CACHE_SIZE, device: str | None = None):
        self.models = [m.strip() for m in models if m and m.strip()]
        self.allow_custom = allow_custom
        self.size = size
        self.device = pick_device(device)
        self._models: OrderedDict[str, torch.nn.Module] = OrderedDict()
        self._lock = threading.Lock()
        self._loading: dict[str, threading.Lock] = {}
        self.loads = 0  # number of real loads (tests check cache hits)

    # ---------------------------------------------------------------- what may be opened, and how
    def kind(self, model_id: str) -> str:
        """'listed', 'zoo' or 'hub'; VisitorError for anything the app does not serve."""
        model_id = (model_id or "").strip()
        if not model_id:
            raise VisitorError("choose a model")
        if model_id in self.models:
            return "listed"
        if self.allow_custom and model_id in _zoo_ids():
            return "zoo"
        if self.allow_custom and is_public_hub_id(model_id):
            return "hub"
        if self.allow_custom:
            raise VisitorError("type a public hub model id (namespace/name) or pick a model from the list")
        raise VisitorError("this demo serves the models in its list only")

    def files(self, model_id: str, names: list[str], kind: str | None = None) -> dict[str, str]:
        """Local paths of ``names`` of an allowed model (FsgenError when it lacks them)."""
        from fsgen_hub.zoo import resolve_model_files

        kind = kind or self.kind(model_id)
        if kind == "listed":
            return resolve_model_files(model_id, names)
        if kind == "zoo":
            from fsgen_hub.zoo import resolve_local

            local = resolve_local(model_id)
            if local is not None:
                return resolve_model_files(str(local), names)
        # never a local path, never a token, and a cache of its own: files the owner's token fetched for listed
        # models (private ones included) are never served to a typed id from the shared cache
        return {name: _public_hub_file(model_id, name, self.public_cache_dir()) for name in names}

    def public_cache_dir(self) -> str:
        from huggingface_hub import constants

        return str(Path(constants.HF_HUB_CACHE).parent / "fsgen_demo_public")

    def _cached(self, key: str, load) -> torch.nn.Module:
        with self._lock:
            if key in self._models:
                self._models.move_to_end(key)
                return self._models[key]
            loading = self._loading.setdefault(key, threading.Lock())
        try:
            with loading:  # one load per model: concurrent requests wait for it and then hit the cache
                with self._lock:
                    if key in self._models:
                        return self._models[key]
                model = load().to(self.device).eval()
                with self._lock:
                    self.loads += 1
                    self._models[key] = model
                    while len(self._models) > self.size:
                        self._models.popitem(last=False)
                return model
        finally:
            with self._lock:
                self._loading.pop(key, None)

    def _load(self, model_id: str, kind: str) -> torch.nn.Module:
        from fsgen_hub.auto import AutoGenerator

        if kind == "listed":
            return AutoGenerator.from_pretrained(model_id)
        files = self.files(model_id, [CONFIG_NAME, WEIGHTS_NAME], kind)
        size = os.path.getsize(files[WEIGHTS_NAME])
        if kind == "hub" and size > MAX_TYPED_WEIGHTS_BYTES:
            raise VisitorError(f"this model is larger than the {MAX_TYPED_WEIGHTS_BYTES >> 20} MB this demo loads")
        return AutoGenerator.from_pretrained(Path(files[CONFIG_NAME]).parent)

    def get(self, model_id: str) -> torch.nn.Module:
        model_id = (model_id or "").strip()
        kind = self.kind(model_id)
        return self._cached(model_id, lambda: self._load(model_id, kind))

    def read_text(self, model_id: str, filename: str) -> str | None:
        """A small text file of an allowed model (None when it has none or it is too large)."""
        kind = self.kind(model_id)
        try:
            path = Path(self.files(model_id, [filename], kind)[filename])
            if path.stat().st_size > MAX_INFO_FILE_BYTES:
                return None
            return path.read_text(encoding="utf-8", errors="replace")
        except (FsgenError, OSError) as exc:
            logger.debug("no %s for %s: %s", filename, model_id, exc)
            return None

    def folder(self, model_id: str) -> ModelFolder | None:
        """config.json, lineage.json and metrics.jsonl of an allowed model, fetched one by one (the panel needs no
        weights) and read by ``fsgen_hub.folder``; None when it has no readable config.json."""
        config = self.read_text(model_id, CONFIG_NAME)
        if config is None:
            return None
        texts = {CONFIG_NAME: config, **{name: self.read_text(model_id, name) for name in (LINEAGE_NAME, METRICS_NAME)}}
        return parse_model_files(model_id, texts)

    def source_of(self, model_id: str) -> tuple[torch.nn.Module, str]:
        """The source generator recorded in the model's lineage, and its name as visitors see it."""
        folder = self.folder(model_id)
        base = folder.base_model if folder is not None else None
        source_id = base.get("id") if isinstance(base, dict) else None
        if not source_id or not isinstance(source_id, str):
            raise VisitorError("this model records no source model: nothing to compare")
        if base.get("local"):
            folder, path, digest = Path(model_id).expanduser(), base.get("path"), base.get("sha256")
            unavailable = VisitorError(f"the source of this model ({_shown(source_id)}) is not available here")
            if self.kind(model_id) != "listed" or not folder.is_dir() or not isinstance(path, str) or not digest:
                raise unavailable
            candidate = (folder / path).resolve()
            weights = candidate / WEIGHTS_NAME
            try:  # the recorded digest proves this is the folder the model was trained from
                if file_sha256(weights) != digest:
                    raise unavailable
            except OSError:
                raise unavailable from None
            from fsgen_hub.auto import AutoGenerator

            return self._cached(f"source:{digest}", lambda: AutoGenerator.from_pretrained(candidate)), source_id
        if source_id in self.models:
            return self._same_weights(self.get(source_id), base, source_id), source_id
        if source_id in _zoo_ids() or is_public_hub_id(source_id):
            kind = "zoo" if source_id in _zoo_ids() else "hub"
            return self._same_weights(self._cached(source_id, lambda: self._load(source_id, kind)), base, source_id), source_id
        raise VisitorError(f"the source of this model ({_shown(source_id)}) is not available here")

    @staticmethod
    def _same_weights(source: torch.nn.Module, base: dict, source_id: str) -> torch.nn.Module:
        """``source`` when its weights file is the one the lineage records (``base_model.sha256``, when recorded): a
        zoo id or hub branch may name newer weights than the model was adapted from, and comparing with those
        would show a change the adaptation did not make."""
        recorded = base.get("sha256")
        found = weights_sha256((getattr(source, "source_info", None) or {}).get("local_dir")) if recorded else None
        if found and found != recorded:
            raise VisitorError(f"the source of this model ({_shown(source_id)}) now holds other weights than it was "
                               "adapted from: nothing to compare")
        return source


def _public_hub_file(repo_id: str, filename: str, cache_dir: str) -> str:
    from huggingface_hub import errors as hf_errors
    from huggingface_hub import hf_hub_download

    try:
        return hf_hub_download(repo_id=repo_id, filename=filename, token=False, cache_dir=cache_dir)
    except (hf_errors.LocalEntryNotFoundError, hf_errors.OfflineModeIsEnabled) as exc:  # before its parent class
        raise FsgenError(f"cannot fetch {repo_id}/{filename} (offline?): {type(exc).__name__}") from None
    except (hf_errors.EntryNotFoundError, hf_errors.RepositoryNotFoundError, hf_errors.RevisionNotFoundError):
        raise VisitorError(f"no public fsgen_hub model {repo_id!r} on the hub (private repos are not served)") from None
    except (hf_errors.HfHubHTTPError, hf_errors.HFValidationError, OSError, ValueError) as exc:
        raise FsgenError(f"cannot fetch {repo_id}/{filename}: {type(exc).__name__}: {str(exc)[:200]}") from None


def _check_int(name: str, value: Any, low: int, high: int) -> int:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise VisitorError(f"{name} must be a number between {low} and {high}") from None
    if not math.isfinite(number) or number != int(number) or not low <= number <= high:
        raise VisitorError(f"{name} must be a whole number between {low} and {high}, got {value}")
    return int(number)


def _check_truncation(value: Any) -> float:
    try:
        truncation = float(value)
    except (TypeError, ValueError):
        raise VisitorError("truncation must be a number between 0 and 1") from None
    if not 0.0 <= truncation <= 1.0:
        raise VisitorError(f"truncation must be between 0 and 1, got {value}")
    return truncation


def generate(cache: ModelCache, model_id: str, seed: Any, truncation: Any, num_images: Any) -> list:
    seed = _check_int("seed", seed, 0, MAX_SEED)
    num_images = _check_int("number of images", num_images, 1, MAX_IMAGES)
    truncation = _check_truncation(truncation)
    G = cache.get(model_id)
    # image i is seed + i (one latent per seed): the Interpolate tab's seed A is the first image here
    return G.sample(seeds=range(seed, seed + num_images), truncation=truncation, device=cache.device)


def compare(cache: ModelCache, model_id: str, seed: Any, truncation: Any, num_images: Any) -> tuple[list, list, str]:
    """Source and adapted images for the same latents; the source comes from the model's lineage."""
    seed = _check_int("seed", seed, 0, MAX_SEED)
    num_images = _check_int("number of images", num_images, 1, MAX_IMAGES)
    truncation = _check_truncation(truncation)
    adapted = cache.get(model_id)
    source, source_id = cache.source_of(model_id)
    if adapted.z_dim != source.z_dim:
        raise VisitorError("this model and its source have different latent sizes: nothing to compare")
    z = adapted.seed_latents(range(seed, seed + num_images))  # the Generate tab's latents
    kwargs = dict(seed=seed, truncation=truncation, device=cache.device, z=z)
    return source.sample(num_images, **kwargs), adapted.sample(num_images, **kwargs), f"source: {_shown(source_id)}"


def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation between Gaussian latents (keeps their norm typical)."""
    a_n, b_n = a / a.norm(dim=-1, keepdim=True), b / b.norm(dim=-1, keepdim=True)
    omega = torch.acos((a_n * b_n).sum(-1, keepdim=True).clamp(-1 + 1e-7, 1 - 1e-7))
    so = torch.sin(omega)
    return (torch.sin((1 - t) * omega) / so) * a + (torch.sin(t * omega) / so) * b


def interpolate(cache: ModelCache, model_id: str, seed_a: Any, seed_b: Any, steps: Any, truncation: Any) -> list:
    seed_a = _check_int("seed A", seed_a, 0, MAX_SEED)
    seed_b = _check_int("seed B", seed_b, 0, MAX_SEED)
    steps = _check_int("interpolation steps", steps, 2, MAX_INTERPOLATION_STEPS)
    truncation = _check_truncation(truncation)
    G = cache.get(model_id)
    za, zb = G.seed_latents([seed_a]), G.seed_latents([seed_b])  # the images of these seeds in Generate
    t = torch.linspace(0, 1, steps).unsqueeze(1)
    z = slerp(za.expand(steps, -1), zb.expand(steps, -1), t)
    return G.sample(steps, seed=seed_a, truncation=truncation, device=cache.device, z=z)


def model_info(model_id: str, cache: ModelCache | None = None) -> str:
    """Markdown panel: architecture, method, shots, source and metrics of the model.

    Never raises: a model without (or with broken) lineage.json / metrics.jsonl shows what it has.
    ``cache`` applies the app's trust model; without one, ``model_id`` is trusted (a script's own model).
    """
    model_id = (model_id or "").strip()
    cache = cache or ModelCache([model_id])
    try:
        folder = cache.folder(model_id)
    except VisitorError as exc:
        return f"**{_shown(model_id)}**: {exc}"
    if folder is None:
        return f"**{_shown(model_id)}**: no model found"
    config, lineage = folder.config, folder.lineage or {}
    lines = [f"### {_shown(model_id)}", f"- architecture: `{_shown(config.get('architecture'))}` at {config.get('resolution')} px"]
    section = lambda key: lineage.get(key) if isinstance(lineage.get(key), dict) else {}  # noqa: E731
    method, data, base, training = section("method"), section("data"), section("base_model"), section("training")
    if method.get("name"):
        lines.append(f"- method: **{_shown(method['name'])}**" + (f" ({method['paper']})" if isinstance(method.get("paper"), str) else ""))
    if base.get("id"):
        lines.append(f"- source model: `{_shown(base['id'])}`")
    if data:
        files = data.get("files") if isinstance(data.get("files"), list) else []
        lines.append(f"- data: `{_shown(data.get('id'))}`, {data.get('shots') or len(files)} shots")
    if training.get("steps"):
        lines.append(f"- training: {training['steps']} steps on {training.get('hardware', '?')}")
    latest = folder.latest_metrics()
    if latest:
        lines += ["", "| metric | value | samples |", "|---|---|---|"]
        for name, record in sorted(latest.items())[:50]:
            protocol = record.get("protocol") if isinstance(record.get("protocol"), dict) else {}
            lines.append(f"| {name} | {record['value']:.4g} | {protocol.get('num_samples', '')} |")
    return "\n".join(lines)


def save_grid(images: list, columns: int | None = None, directory: str | os.PathLike | None = None,
              keep: int = MAX_GRID_FILES) -> str:
    """One PNG of all images (for download), in ``directory``, where only the ``keep`` newest grids stay
    (Gradio copies what a handler returns into its own cache, so older files are no longer needed)."""
    from PIL import Image

    columns = columns or min(len(images), 8)
    rows = math.ceil(len(images) / columns)
    w, h = images[0].size
    grid = Image.new("RGB", (columns * w, rows * h), "white")
    for i, image in enumerate(images):
        grid.paste(image, ((i % columns) * w, (i // columns) * h))
    fd, path = tempfile.mkstemp(prefix="fsgen_", suffix=".png", dir=directory)
    os.close(fd)
    grid.save(path)
    if directory is not None:
        grids = sorted(Path(directory).glob("fsgen_*.png"), key=lambda p: p.stat().st_mtime_ns)
        for old in grids[:-keep]:
            old.unlink(missing_ok=True)
    return path


def build_app(models: list[str] | None = None, device: str | None = None, concurrency_limit: int = 2,
              allow_custom: bool = False):
    """The Blocks app; ``models`` are the choices of the picker. Visitors may type other ids only with
    ``allow_custom`` (public hub ids and zoo ids, fetched without a token)."""
    from fsgen_hub.utils.extras import require

    gr = require("gradio", "the demo (fsgen demo)")

    choices = list(dict.fromkeys([*(models or []), *default_models()]))
    cache = ModelCache(choices, allow_custom=allow_custom, device=device)
    grid_dir = tempfile.mkdtemp(prefix="fsgen_demo_")

    def ui(fn):
        def wrapped(*args):
            try:
                return fn(*args)
            except VisitorError as exc:
                raise gr.Error(str(exc)) from None
            except Exception as exc:  # paths, hub answers, bugs: for the server log, not for visitors
                logger.warning("demo %s failed: %s: %s", fn.__name__, type(exc).__name__, exc)
                raise gr.Error(GENERIC_ERROR) from None

        wrapped.__name__ = fn.__name__
        return wrapped

    def safe_info(model_id):
        try:
            return model_info(model_id, cache)
        except Exception as exc:  # the panel must never break the page
            logger.warning("model info for %r failed: %s: %s", model_id, type(exc).__name__, exc)
            return f"**{_shown(model_id)}**: no information available"

    @ui
    def on_generate(model_id, seed, truncation, num_images):
        images = generate(cache, model_id, seed, truncation, num_images)
        return images, save_grid(images, directory=grid_dir), safe_info(model_id)

    @ui
    def on_compare(model_id, seed, truncation, num_images):
        source, adapted, note = compare(cache, model_id, seed, truncation, num_images)
        return source, adapted, note

    @ui
    def on_interpolate(model_id, seed_a, seed_b, steps, truncation):
        return interpolate(cache, model_id, seed_a, seed_b, steps, truncation)

    def on_random_seed():
        return int(torch.randint(0, MAX_SEED, ()).item())

    label = "Model (pick one" + (", or type a public hub id namespace/name)" if allow_custom else ")")
    # delete_cache: Gradio's own copies of returned images and files go after an hour
    with gr.Blocks(title="fsgen_hub: few-shot GAN adaptation", delete_cache=(3600, 3600)) as demo:
        gr.Markdown(
            "# fsgen_hub demo\nSample few-shot adapted GANs, compare them with their source model on the "
            "same latents, and walk between two seeds."
        )
        with gr.Row():
            model = gr.Dropdown(
                choices=choices, value=choices[0] if choices else None, allow_custom_value=allow_custom,
                label=label, scale=3,
            )
            info = gr.Markdown(safe_info(choices[0]) if choices else "")
        with gr.Row():
            seed = gr.Number(value=0, precision=0, label="Seed", minimum=0, maximum=MAX_SEED)
            random_seed = gr.Button("Random seed", size="sm")
            truncation = gr.Slider(0.0, 1.0, value=1.0, step=0.05, label="Truncation")
            num_images = gr.Slider(1, MAX_IMAGES, value=8, step=1, label="Number of images")
        with gr.Tab("Generate"):
            generate_button = gr.Button("Generate", variant="primary")
            gallery = gr.Gallery(label="Samples", columns=8, height="auto")
            grid_file = gr.File(label="Download grid (PNG)")
        with gr.Tab("Source vs adapted"):
            compare_button = gr.Button("Compare with source")
            compare_note = gr.Markdown()
            source_gallery = gr.Gallery(label="Source model", columns=8, height="auto")
            adapted_gallery = gr.Gallery(label="Adapted model", columns=8, height="auto")
        with gr.Tab("Interpolate"):
            with gr.Row():
                seed_b = gr.Number(value=1, precision=0, label="Seed B", minimum=0, maximum=MAX_SEED)
                steps = gr.Slider(2, MAX_INTERPOLATION_STEPS, value=8, step=1, label="Steps")
            interpolate_button = gr.Button("Interpolate")
            strip = gr.Gallery(label="Seed A → seed B", columns=MAX_INTERPOLATION_STEPS, height="auto")

        random_seed.click(on_random_seed, outputs=seed, api_name="random_seed")
        generate_button.click(
            on_generate, [model, seed, truncation, num_images], [gallery, grid_file, info], api_name="generate"
        )
        compare_button.click(
            on_compare, [model, seed, truncation, num_images], [source_gallery, adapted_gallery, compare_note],
            api_name="compare",
        )
        interpolate_button.click(
            on_interpolate, [model, seed, seed_b, steps, truncation], strip, api_name="interpolate"
        )
        model.change(safe_info, model, info, api_name=False)
        if choices:  # a first page already shows samples of the default model
            demo.load(on_generate, [model, seed, truncation, num_images], [gallery, grid_file, info], api_name=False)
    demo.queue(default_concurrency_limit=concurrency_limit, max_size=32)
    demo.fsgen_cache = cache  # tests inspect cache hits
    demo.fsgen_grid_dir = grid_dir
    weakref.finalize(demo, shutil.rmtree, grid_dir, True)  # the grid files go with the app
    return demo
