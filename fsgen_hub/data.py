"""Few-shot image sets: a local folder, a `datasets` folder/parquet, or a hub dataset id.

Images become RGB (grayscale, RGBA/LA/palette composited on white, 16-bit scaled), are resized on
the shorter side (antialiased) and centre-cropped to the model resolution, and are returned in
[-1, 1]. ``shots`` picks a reproducible subset (by ``shot_seed``) recorded by name and sha256.
"""
from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from fsgen_hub.utils.errors import DataError, OfflineError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".gif", ".tif", ".tiff"}
EMBEDDED_TARGET = Path(__file__).resolve().parent / "assets" / "target"
EMBEDDED_TARGET_ID = "fsgen_hub/assets/target (10 Noto emoji faces, Apache-2.0)"


@dataclass
class RawImage:
    name: str
    data: bytes


def to_rgb(image):
    """RGB version of a PIL image: transparency on white, 16-bit and float modes rescaled to 8 bits."""
    from PIL import Image

    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        array = np.asarray(image, dtype=np.float64)
        peak = 65535.0 if image.mode.startswith("I;16") or array.max() > 255 else 255.0
        image = Image.fromarray(np.clip(array / peak * 255.0, 0, 255).astype(np.uint8), "L")
    if image.mode == "P":
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    return image.convert("RGB")


def resize_center_crop(image, resolution: int):
    from PIL import Image

    w, h = image.size
    scale = resolution / min(w, h)
    new = (max(resolution, round(w * scale)), max(resolution, round(h * scale)))
    image = image.resize(new, Image.LANCZOS)
    left, top = (new[0] - resolution) // 2, (new[1] - resolution) // 2
    return image.crop((left, top, left + resolution, top + resolution))


# Bounds checked from the image header, before any pixel is decoded or resized: a small file may declare a
# huge image (decompression bomb), and a 1-pixel-high strip scaled up to the model resolution on its short
# side would become millions of pixels wide.
MAX_IMAGE_PIXELS = 40_000_000
MAX_ASPECT_RATIO = 16


def decode(raw: RawImage, resolution: int) -> torch.Tensor:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(raw.data)) as image:
            width, height = image.size
            if width < 1 or height < 1 or width * height > MAX_IMAGE_PIXELS:
                raise DataError(f"image {raw.name} is {width}x{height} pixels, more than {MAX_IMAGE_PIXELS:,}: "
                                "downscale it (or remove it) first")
            if max(width, height) > MAX_ASPECT_RATIO * min(width, height):
                raise DataError(f"image {raw.name} is {width}x{height} pixels, a strip rather than a picture "
                                f"(aspect ratio above {MAX_ASPECT_RATIO}): crop it or remove it")
            image.load()
            image = resize_center_crop(to_rgb(image), resolution)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError,
            MemoryError, EOFError) as exc:
        raise DataError(f"cannot read image {raw.name}: {str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__} "
                        "(remove or replace the file)") from None
    array = np.asarray(image, dtype=np.float32) / 127.5 - 1.0
    return torch.from_numpy(array).permute(2, 0, 1).contiguous()


def _datasets():
    from fsgen_hub.utils.extras import require

    return require("datasets", "reading datasets (parquet files, saved datasets, hub dataset ids)")


def _folder_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _from_folder(folder: Path, files: list[Path] | None = None) -> list[RawImage]:
    files = _folder_files(folder) if files is None else files
    return [RawImage(str(p.relative_to(folder)), p.read_bytes()) for p in files]


def _image_column(dataset, image_column: str | None) -> str:
    features = getattr(dataset, "features", {}) or {}
    if image_column:
        if image_column not in features:
            raise DataError(f"the dataset has no column {image_column!r}; columns: {', '.join(features)}")
        return image_column
    ImageFeature = _datasets().Image

    for name, feature in features.items():
        if isinstance(feature, ImageFeature):
            return name
    for name in ("image", "img", "images"):
        if name in features:
            return name
    raise DataError(f"no image column found (columns: {', '.join(features)}); pass --image-column")


def _from_dataset(dataset, image_column: str | None, shots: int | None = None, shot_seed: int = 0) -> list[RawImage]:
    """The raw bytes of the shots of a ``datasets.Dataset``: drawn first (``shuffle(seed).select``), so
    that only the chosen rows are read and decoded, whatever the size of the dataset."""
    ImageFeature = _datasets().Image

    column = _image_column(dataset, image_column)
    dataset = dataset.select_columns([column]).cast_column(column, ImageFeature(decode=False))
    if shots is not None and shots != len(dataset):
        _check_shot_count(shots, len(dataset))
        dataset = dataset.shuffle(seed=int(shot_seed)).select(range(shots))
    out = []
    for i, item in enumerate(dataset[column]):
        data = item.get("bytes") if isinstance(item, dict) else None
        path = item.get("path") if isinstance(item, dict) else None
        if data is None and path:
            data = Path(path).read_bytes()
        if data is None:
            raise DataError(f"row {i} of the dataset has no image data")
        out.append(RawImage(Path(path).name if path else f"row{i:06d}", data))
    return out


def _pick_split(loaded, split: str, where: str):
    datasets = _datasets()

    if isinstance(loaded, datasets.DatasetDict):
        if split not in loaded:
            raise DataError(f"{where} has no split {split!r}; splits: {', '.join(loaded)} (pass --data-split)")
        return loaded[split]
    return loaded


def _load_dataset(path: str, where: str, **kwargs):
    """``datasets.load_dataset`` with its errors (unknown split or config, no data files) as one line."""
    datasets = _datasets()

    try:
        return datasets.load_dataset(path, **kwargs)
    except (ValueError, FileNotFoundError) as exc:
        if isinstance(exc, FileNotFoundError) and "/" in path and not Path(path).exists():
            raise  # a hub id: _from_hub words it
        raise DataError(f"cannot load {where}: {str(exc).splitlines()[0][:200]}") from None


def read_shots(
    source: str | Path | None,
    shots: int | None = None,
    shot_seed: int = 0,
    image_column: str | None = None,
    config: str | None = None,
    split: str = "train",
    revision: str | None = None,
) -> tuple[list[RawImage], str]:
    """The raw images chosen as shots (all when ``shots`` is None) and a printable id of ``source``.

    Only the chosen images are read: a folder lists its files and reads the drawn ones; a dataset
    (saved folder, parquet file or folder of parquet shards, hub id) draws its rows with
    ``shuffle(seed=shot_seed).select(range(shots))`` before any image is decoded.
    """
    if source is None or str(source) == "":
        files = _folder_files(EMBEDDED_TARGET)
        return _from_folder(EMBEDDED_TARGET, _choose(files, shots, shot_seed)), EMBEDDED_TARGET_ID
    path = Path(str(source)).expanduser()
    if path.is_dir():
        if (path / "dataset_info.json").is_file() or (path / "state.json").is_file() or (path / "dataset_dict.json").is_file():
            datasets = _datasets()
            loaded = _pick_split(datasets.load_from_disk(str(path)), split, str(source))
            return _from_dataset(loaded, image_column, shots, shot_seed), str(source)
        files = _folder_files(path)
        if files:
            return _from_folder(path, _choose(files, shots, shot_seed)), str(source)
        if any(path.rglob("*.parquet")):  # parquet shards, laid out as in a hub dataset repo: every shard is read
            dataset = _load_dataset(str(path), str(source), name=config, split=split)
            return _from_dataset(dataset, image_column, shots, shot_seed), str(source)
        raise DataError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in {path}")
    if path.is_file() and path.suffix == ".parquet":
        if split != "train":
            raise DataError(f"{path} is a single parquet file: it has only the train split (drop --data-split)")
        dataset = _load_dataset("parquet", str(source), data_files=str(path), split="train")
        return _from_dataset(dataset, image_column, shots, shot_seed), str(source)
    if path.is_file():
        raise DataError(f"{path} is a single file: --data takes a folder of images, a dataset folder, a parquet file or a hub dataset id")
    if str(source).startswith((".", "/", "~")) or str(source).count("/") > 1:
        raise DataError(f"no folder or file at {source}")
    dataset = _from_hub(str(source), config=config, split=split, revision=revision)
    return _from_dataset(dataset, image_column, shots, shot_seed), str(source)


def read_raw_images(source: str | Path | None, image_column: str | None = None, **kwargs) -> tuple[list[RawImage], str]:
    """All raw images of ``source`` and a printable id of it."""
    return read_shots(source, None, image_column=image_column, **kwargs)


def _from_hub(dataset_id: str, config: str | None = None, split: str = "train", revision: str | None = None):
    """``datasets.load_dataset(dataset_id, name=config, split=split, revision=revision)``: the hub, or
    offline (HF_HUB_OFFLINE=1) the copy a previous load left in the datasets cache."""
    from huggingface_hub import constants

    where = f"dataset {dataset_id!r}" + (f" (config {config!r})" if config else "")
    try:
        return _load_dataset(dataset_id, where, name=config, split=split, revision=revision)
    except DataError:
        raise
    except FileNotFoundError as exc:
        raise DataError(f"no dataset {dataset_id!r} on the hub or in the local cache ({str(exc).splitlines()[0][:100]})") from None
    except (ConnectionError, OSError) as exc:
        why = "the hub is offline (HF_HUB_OFFLINE=1)" if constants.HF_HUB_OFFLINE else "the hub cannot be reached"
        raise OfflineError(f"dataset {dataset_id!r} is not cached and {why}: pass a local folder of images") from exc
    except Exception as exc:  # datasets raises many types for a missing/unreachable repo
        text = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        if "offline" in text.lower() or "connection" in text.lower() or constants.HF_HUB_OFFLINE:
            raise OfflineError(f"dataset {dataset_id!r} is not available offline ({text}): pass a local folder of images") from None
        raise DataError(f"cannot load dataset {dataset_id!r}: {text}") from None


def _check_shot_count(shots: int, available: int) -> None:
    if shots < 1:
        raise DataError("--shots must be at least 1")
    if shots > available:
        raise DataError(f"asked for {shots} shots but the data has only {available} images")


def _choose(items: list, shots: int | None, shot_seed: int) -> list:
    if shots is None or shots == len(items):
        return items
    _check_shot_count(shots, len(items))
    order = torch.randperm(len(items), generator=torch.Generator().manual_seed(int(shot_seed)))[:shots]
    return [items[i] for i in sorted(order.tolist())]


def select_shots(raw: list[RawImage], shots: int | None, shot_seed: int) -> list[RawImage]:
    return _choose(raw, shots, shot_seed)


def load_images(
    source: str | Path | None,
    resolution: int,
    shots: int | None = None,
    shot_seed: int = 0,
    image_column: str | None = None,
    return_id: bool = False,
    config: str | None = None,
    split: str = "train",
    revision: str | None = None,
):
    """Images of ``source`` as (N, 3, R, R) in [-1, 1] and records [{"name", "sha256"}] (+ the data id).

    ``config``/``split``/``revision`` select a dataset's configuration, split and hub revision
    (``datasets.load_dataset(name=, split=, revision=)``); only the drawn shots are decoded.
    """
    chosen, data_id = read_shots(source, shots, shot_seed, image_column, config=config, split=split, revision=revision)
    if not chosen:
        raise DataError(f"no images in {data_id}")
    tensor = torch.stack([decode(item, resolution) for item in chosen])
    records = [{"name": item.name, "sha256": hashlib.sha256(item.data).hexdigest()} for item in chosen]
    return (tensor, records, data_id) if return_id else (tensor, records)
