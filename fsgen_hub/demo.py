"""The Gradio app shared by ``fsgen demo`` and the Space in ``spaces_app/``.

The handlers (``generate``, ``compare``, ``interpolate``, ``model_info``) are plain functions that
raise ``FsgenError`` on bad input; ``build_app`` wraps them so the message shows in the UI.
"""
from __future__ import annotations

import json
import math
import os
import tempfile
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch

from fsgen_hub.errors import FsgenError

MAX_IMAGES = 16
MAX_INTERPOLATION_STEPS = 12
MAX_SEED = 2**31 - 1
CACHE_SIZE = 4


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
    """Generators loaded once per id (bounded LRU, thread-safe: Gradio runs handlers in threads)."""

    def __init__(self, size: int = CACHE_SIZE, device: str | None = None):
        self.size = size
        self.device = pick_device(device)
        self._models: OrderedDict[str, torch.nn.Module] = OrderedDict()
        self._lock = threading.Lock()
        self.loads = 0  # number of real loads (tests check cache hits)

    def get(self, model_id: str) -> torch.nn.Module:
        model_id = (model_id or "").strip()
        if not model_id:
            raise FsgenError("choose a model or type a hub id / local folder")
        with self._lock:
            if model_id in self._models:
                self._models.move_to_end(model_id)
                return self._models[model_id]
        from fsgen_hub.hub import AutoGenerator

        model = AutoGenerator.from_pretrained(model_id).to(self.device).eval()
        with self._lock:
            self.loads += 1
            self._models[model_id] = model
            while len(self._models) > self.size:
                self._models.popitem(last=False)
        return model


def _check_int(name: str, value: Any, low: int, high: int) -> int:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise FsgenError(f"{name} must be a number between {low} and {high}") from None
    if not math.isfinite(number) or number != int(number) or not low <= number <= high:
        raise FsgenError(f"{name} must be a whole number between {low} and {high}, got {value}")
    return int(number)


def _check_truncation(value: Any) -> float:
    try:
        truncation = float(value)
    except (TypeError, ValueError):
        raise FsgenError("truncation must be a number between 0 and 1") from None
    if not 0.0 <= truncation <= 1.0:
        raise FsgenError(f"truncation must be between 0 and 1, got {value}")
    return truncation


def generate(cache: ModelCache, model_id: str, seed: Any, truncation: Any, num_images: Any) -> list:
    seed = _check_int("seed", seed, 0, MAX_SEED)
    num_images = _check_int("number of images", num_images, 1, MAX_IMAGES)
    truncation = _check_truncation(truncation)
    G = cache.get(model_id)
    # image i is seed + i (one latent per seed): the Interpolate tab's seed A is the first image here
    return G.sample(seeds=range(seed, seed + num_images), truncation=truncation, device=cache.device)


def source_model_id(model_id: str) -> str | None:
    lineage = read_model_file(model_id, "lineage.json")
    if isinstance(lineage, dict):
        return (lineage.get("base_model") or {}).get("id")
    return None


def compare(cache: ModelCache, model_id: str, seed: Any, truncation: Any, num_images: Any) -> tuple[list, list, str]:
    """Source and adapted images for the same latents; the source comes from the model's lineage."""
    seed = _check_int("seed", seed, 0, MAX_SEED)
    num_images = _check_int("number of images", num_images, 1, MAX_IMAGES)
    truncation = _check_truncation(truncation)
    source_id = source_model_id(model_id)
    if not source_id:
        raise FsgenError(f"{model_id} records no source model (no lineage.json with base_model.id): nothing to compare")
    adapted, source = cache.get(model_id), cache.get(source_id)
    if adapted.z_dim != source.z_dim:
        raise FsgenError(f"{model_id} and its source {source_id} have different latent sizes")
    z = adapted.seed_latents(range(seed, seed + num_images))  # the Generate tab's latents
    kwargs = dict(seed=seed, truncation=truncation, device=cache.device, z=z)
    return source.sample(num_images, **kwargs), adapted.sample(num_images, **kwargs), f"source: {source_id}"


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


def read_model_file(model_id: str, filename: str):
    """A JSON/JSONL/text file of the model's folder or hub repo, or None when it has none."""
    from fsgen_hub.hub import resolve_model_files

    try:
        path = Path(resolve_model_files(model_id, [filename])[filename])
    except FsgenError:
        return None
    text = path.read_text(encoding="utf-8")
    if filename.endswith(".jsonl"):
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    if filename.endswith(".json"):
        return json.loads(text)
    return text


def model_info(model_id: str) -> str:
    """Markdown panel: architecture, method, shots, source and metrics of the model."""
    model_id = (model_id or "").strip()
    config = read_model_file(model_id, "config.json")
    if config is None:
        return f"**{model_id}**: no model found"
    lines = [f"### {model_id}", f"- architecture: `{config.get('architecture')}` at {config.get('resolution')} px"]
    lineage = read_model_file(model_id, "lineage.json") or {}
    if lineage:
        method = lineage.get("method") or {}
        data = lineage.get("data") or {}
        base = lineage.get("base_model") or {}
        training = lineage.get("training") or {}
        if method.get("name"):
            lines.append(f"- method: **{method['name']}**" + (f" ({method['paper']})" if method.get("paper") else ""))
        if base.get("id"):
            lines.append(f"- source model: `{base['id']}`")
        if data:
            lines.append(f"- data: `{data.get('id')}`, {data.get('shots') or len(data.get('files', []))} shots")
        if training.get("steps"):
            lines.append(f"- training: {training['steps']} steps on {training.get('hardware', '?')}")
    metrics = read_model_file(model_id, "metrics.jsonl") or []
    latest: dict[str, dict] = {}
    for record in metrics:
        latest[record.get("metric")] = record
    if latest:
        lines += ["", "| metric | value | samples |", "|---|---|---|"]
        for name, record in sorted(latest.items()):
            samples = (record.get("protocol") or {}).get("num_samples", "")
            lines.append(f"| {name} | {record.get('value'):.4g} | {samples} |")
    return "\n".join(lines)


def save_grid(images: list, columns: int | None = None) -> str:
    """One PNG of all images (for download)."""
    from PIL import Image

    columns = columns or min(len(images), 8)
    rows = math.ceil(len(images) / columns)
    w, h = images[0].size
    grid = Image.new("RGB", (columns * w, rows * h), "white")
    for i, image in enumerate(images):
        grid.paste(image, ((i % columns) * w, (i // columns) * h))
    fd, path = tempfile.mkstemp(prefix="fsgen_", suffix=".png")
    os.close(fd)
    grid.save(path)
    return path


def build_app(models: list[str] | None = None, device: str | None = None, concurrency_limit: int = 2):
    """The Blocks app; ``models`` are the choices of the picker (any other id can be typed)."""
    from fsgen_hub.extras import require

    gr = require("gradio", "the demo (fsgen demo)")

    choices = list(dict.fromkeys([*(models or []), *default_models()]))
    cache = ModelCache(device=device)

    def ui(fn):
        def wrapped(*args):
            try:
                return fn(*args)
            except FsgenError as exc:
                raise gr.Error(str(exc)) from None

        wrapped.__name__ = fn.__name__
        return wrapped

    @ui
    def on_generate(model_id, seed, truncation, num_images):
        images = generate(cache, model_id, seed, truncation, num_images)
        return images, save_grid(images), model_info(model_id)

    @ui
    def on_compare(model_id, seed, truncation, num_images):
        source, adapted, note = compare(cache, model_id, seed, truncation, num_images)
        return source, adapted, note

    @ui
    def on_interpolate(model_id, seed_a, seed_b, steps, truncation):
        return interpolate(cache, model_id, seed_a, seed_b, steps, truncation)

    def on_random_seed():
        return int(torch.randint(0, MAX_SEED, ()).item())

    with gr.Blocks(title="fsgen_hub: few-shot GAN adaptation") as demo:
        gr.Markdown(
            "# fsgen_hub demo\nSample few-shot adapted GANs, compare them with their source model on the "
            "same latents, and walk between two seeds."
        )
        with gr.Row():
            model = gr.Dropdown(
                choices=choices, value=choices[0] if choices else None, allow_custom_value=True,
                label="Model (zoo id, hub id or local folder)", scale=3,
            )
            info = gr.Markdown(model_info(choices[0]) if choices else "")
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
        model.change(lambda m: model_info(m), model, info, api_name=False)
        if choices:  # a first page already shows samples of the default model
            demo.load(on_generate, [model, seed, truncation, num_images], [gallery, grid_file, info], api_name=False)
    demo.queue(default_concurrency_limit=concurrency_limit, max_size=32)
    demo.fsgen_cache = cache  # tests inspect cache hits
    return demo
