"""Model cards rendered from a model folder alone.

``write_model_card(dir)`` reads ``config.json``, ``lineage.json``, ``metrics.jsonl`` and the images
of a model folder (see docs/CONTRACTS.md; read through ``fsgen_hub.folder``) and writes ``README.md``:
Hub metadata through ``huggingface_hub.ModelCardData`` (licence inherited from the base model,
``base_model``, ``datasets``, a ``model-index`` holding every metric result) and a body rendered from
``assets/model_cards/template.md``.

A generated card ends with a marker holding the SHA-256 of everything above it. A card whose
digest still matches was not edited, so ``fsgen_hub.publish.push_folder``/``fsgen push`` may regenerate
it (to put the repo id into the usage snippet and show the latest metrics); a card edited by hand is
pushed as it is. Publishing itself lives in ``fsgen_hub.publish``.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import re
from pathlib import Path
from typing import Any

from fsgen_hub.folder import read_model_folder
from fsgen_hub.utils.constants import CARD_NAME, DISCRIMINATOR_SUBFOLDER, LIBRARY_NAME, PIPELINE_TAG, WEIGHTS_NAME, __version__
from fsgen_hub.utils.errors import FsgenError

TEMPLATE_PATH = Path(__file__).resolve().parent / "assets" / "model_cards" / "template.md"
TASK_NAME = "Unconditional Image Generation"

# Licence ids the Hub accepts in metadata (https://huggingface.co/docs/hub/repositories-licenses); any other
# licence becomes `license: other` + `license_name` so that the card still validates.
HUB_LICENSES = frozenset({
    "apache-2.0", "mit", "openrail", "bigscience-openrail-m", "creativeml-openrail-m",
    "bigscience-bloom-rail-1.0", "bigcode-openrail-m", "afl-3.0", "artistic-2.0", "bsl-1.0", "bsd",
    "bsd-2-clause", "bsd-3-clause", "bsd-3-clause-clear", "c-uda", "cc", "cc0-1.0", "cc-by-2.0",
    "cc-by-2.5", "cc-by-3.0", "cc-by-4.0", "cc-by-sa-3.0", "cc-by-sa-4.0", "cc-by-nc-2.0", "cc-by-nc-3.0",
    "cc-by-nc-4.0", "cc-by-nd-4.0", "cc-by-nc-nd-3.0", "cc-by-nc-nd-4.0", "cc-by-nc-sa-2.0",
    "cc-by-nc-sa-3.0", "cc-by-nc-sa-4.0", "cdla-sharing-1.0", "cdla-permissive-1.0", "cdla-permissive-2.0",
    "wtfpl", "ecl-2.0", "epl-1.0", "epl-2.0", "etalab-2.0", "eupl-1.1", "eupl-1.2", "agpl-3.0", "gfdl",
    "gpl", "gpl-2.0", "gpl-3.0", "lgpl", "lgpl-2.1", "lgpl-3.0", "isc", "h-research", "intel-research",
    "lppl-1.3c", "ms-pl", "apple-ascl", "apple-amlr", "mpl-2.0", "odc-by", "odbl", "openrail++", "osl-3.0",
    "postgresql", "ofl-1.1", "ncsa", "unlicense", "zlib", "pddl", "lgpl-lr", "deepfloyd-if-license",
    "llama2", "llama3", "llama3.1", "llama3.2", "llama3.3", "llama4", "gemma", "unknown", "other",
})
LICENSE_LINKS = {"nvidia-source-code-license-nc": "https://nvlabs.github.io/stylegan2/license.html"}

_MARKER = "<!-- fsgen_hub generated card sha256={digest}: edit freely, an edited card is never regenerated -->"
_MARKER_RE = re.compile(r"\n<!-- fsgen_hub generated card sha256=([0-9a-f]{64})[^\n]*-->\n?\Z")
_HUB_ID_RE = re.compile(r"^[A-Za-z0-9][\w.-]{0,95}/[\w.-]{1,96}$")
_IMAGES = (  # (lineage artifact key, default file, title, caption)
    ("samples", "samples.png", "Samples", "images of this generator for fixed latent codes (seed of the run)."),
    ("source_vs_adapted", "source_vs_adapted.png", "Source vs adapted",
     "top row: the base model; bottom row: this model, from the same latent codes."),
    ("shots", "shots.png", "Training images", "the images the model was trained or adapted on."),
    ("training_curve", "swd_curve.png", "SWD over training",
     "sliced Wasserstein distance of samples against training images at each measured step (lower is better)."),
)


def published_metrics(records: list[dict], lineage: dict | None) -> list[dict]:
    """The last record per metric name among those that describe the published weights.

    A record made during training at step N describes the weights of step N. The folder holds the
    weights of the final step, or of the selected best step: records of other steps are dropped.
    Records without a step were made on the folder afterwards (``fsgen evaluate``) and always count.
    """
    lineage = lineage or {}
    step = (lineage.get("best_checkpoint") or {}).get("step")
    if step is None:
        step = (lineage.get("training") or {}).get("steps")
    last: dict[str, dict] = {}
    for record in records:
        if record.get("step") is None or step is None or record["step"] == step:
            last.pop(record["metric"], None)  # re-insert: the table follows the order of the latest results
            last[record["metric"]] = record
    return list(last.values())


# ---------------------------------------------------------------------------------------------- rendering
def _hub_id(value: Any, model_dir: Path) -> str | None:
    """``value`` when it reads as a hub ``namespace/name`` id and is not a local path that exists."""
    if not isinstance(value, str) or not _HUB_ID_RE.match(value) or ".." in value or value.endswith(".git"):
        return None
    if Path(value).exists() or (model_dir.parent / value).exists():
        return None  # a relative folder such as runs/source, not a hub repo
    return value


def _display(value: Any, model_dir: Path, local: bool = False) -> str:
    """How an id or path is shown: hub ids as they are, local paths by their name only (no home paths)."""
    if value is None or value == "":
        return "an unrecorded source"
    value = str(value)
    if local:  # the trainer's portable lineage: a local folder or file recorded by its name only
        return f"a local {'file' if Path(value).suffix else 'folder'} (`{value}`)"
    if _hub_id(value, model_dir):
        return f"`{value}`"
    if value.startswith("tensor["):
        return "the training shots"
    if value.startswith(("/", "~", "\\")) or re.match(r"^[A-Za-z]:[\\/]", value):
        name = re.split(r"[\\/]", value.rstrip("\\/"))[-1]  # POSIX or Windows separators, whatever the OS
        kind = "file" if Path(name).suffix else "folder"  # a dataset file (parquet, zip) or a folder of images
        return f"a local {kind} (`{name}`)"  # absolute paths would publish the user's file tree
    return f"`{value}`"


def _license(lineage: dict | None) -> tuple[dict[str, str], str]:
    """(metadata fields, sentence for the card) for the licence inherited from the base model."""
    base = (lineage or {}).get("base_model") or {}
    raw = base.get("license")
    if not raw:
        return {"license": "unknown"}, (
            "The licence of the weights this model derives from is not recorded (no `base_model.license` in "
            "lineage.json), so the metadata says `unknown`: check the origin of the weights and of the training "
            "data before use or redistribution, and set a licence in this card."
        )
    slug = str(raw).strip().lower()
    if base.get("id"):
        where = f" of the base model {_display(base.get('id'), Path('.'), base.get('local', False))}"
    else:  # trained from scratch: the licence comes from the training data's terms
        where = " of its training data" if (lineage or {}).get("kind") == "trained" else " of the base model"
    if slug in HUB_LICENSES:
        return {"license": slug}, f"`{slug}`, inherited from the licence{where}."
    name = re.sub(r"[^a-z0-9.-]+", "-", slug).strip("-") or "custom"
    fields = {"license": "other", "license_name": name}
    if slug in LICENSE_LINKS:
        fields["license_link"] = LICENSE_LINKS[slug]
    link = f" ({LICENSE_LINKS[slug]})" if slug in LICENSE_LINKS else ""
    return fields, (
        f"`{raw}`{link}, inherited from the licence{where}; it is not a Hub licence id, so the metadata says "
        f"`license: other` with `license_name: {name}`. Its terms (e.g. non-commercial use) apply to this model."
    )


def _format_value(value: float) -> str:
    return f"{value:.4g}" if math.isfinite(value) else str(value)


def _reference(protocol: dict, model_dir: Path) -> tuple[str, str, str]:
    """(dataset type, dataset name, display) of a metric's reference set."""
    ref = protocol.get("reference")
    hub = _hub_id(ref, model_dir)
    if hub:
        return hub, hub, f"`{hub}`"
    if ref is None or str(ref).startswith("tensor["):
        return "training-shots", "training shots", "the training shots"
    name = Path(str(ref)).name or str(ref)
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-") or "reference"
    return slug, name, _display(ref, model_dir)


def _eval_results(records: list[dict], model_dir: Path) -> tuple[list, list[dict]]:
    """(EvalResult objects for the model-index, rows for the card's table)."""
    from huggingface_hub import EvalResult

    results, rows = [], []
    for record in records:
        protocol = record.get("protocol") or {}
        value = float(record["value"])
        extractor = protocol.get("feature_extractor")
        weights = protocol.get("weights_sha256")
        dataset_type, dataset_name, display = _reference(protocol, model_dir)
        keys = ("num_samples", "num_reference", "resolution", "seed")
        args = {k: protocol[k] for k in keys if protocol.get(k) is not None}
        if weights:
            args["weights_sha256"] = weights
        if math.isfinite(value):  # the Hub's model-index takes numbers only
            results.append(EvalResult(
                task_type=PIPELINE_TAG, task_name=TASK_NAME, dataset_type=dataset_type, dataset_name=dataset_name,
                metric_type=record["metric"], metric_value=value, metric_name=record["metric"],
                metric_config=extractor or "none", metric_args=args or None,
            ))
        rows.append({
            "metric": record["metric"], "value": _format_value(value),
            "num_samples": protocol.get("num_samples", "?"), "reference": display,
            "num_reference": protocol.get("num_reference", "?"),
            "extractor": f"`{extractor}`" if extractor else "none (weight-free)",
            "weights": f"`{weights[:12]}…`" if weights else "—",
            "step": record.get("step") if record.get("step") is not None else "final",
        })
    return results, rows


def _images(model_dir: Path, lineage: dict) -> list[dict]:
    artifacts = lineage.get("artifacts") or {}
    out = []
    for key, default, title, caption in _IMAGES:
        name = artifacts.get(key) or default
        if (model_dir / name).is_file():
            out.append({"file": name, "title": title, "caption": caption})
    return out


def _duration(seconds: Any) -> str:
    if not isinstance(seconds, (int, float)):
        return "not recorded"
    if seconds < 120:
        return f"{seconds:.1f} s"
    return f"{seconds:.0f} s ({seconds / 60:.1f} min)" if seconds < 7200 else f"{seconds / 3600:.2f} h"


def _training_rows(lineage: dict) -> list[tuple[str, Any]]:
    training = lineage.get("training") or {}
    if not training:
        return []
    rows = [("Steps", training.get("steps", "?")), ("Batch size", training.get("batch_size", "?")),
            ("Seed", training.get("seed", "?")), ("Wall time", _duration(training.get("wall_time_s"))),
            ("Hardware", training.get("hardware") or "not recorded")]
    if training.get("images_seen"):
        rows.append(("Images seen", f"{training['images_seen']:,}"))
    if training.get("chunks"):
        rows.append(("Runs", f"{training['chunks']} resumed chunks (`fsgen train --resume latest`), wall time summed"))
    processes = training.get("num_processes")
    if processes:
        same = " (replicas checked identical)" if training.get("replicas_identical") else ""
        rows.append(("Processes", f"{processes}{same}"))
    if training.get("mixed_precision"):
        rows.append(("Mixed precision", training["mixed_precision"]))
    if training.get("augment"):
        rows.append(("Augmentation", training["augment"]))
    best = lineage.get("best_checkpoint")
    if best:
        rows.append(("Published weights", f"step {best.get('step')} (lowest {best.get('metric')}), not the last step"))
    return rows


def _data_section(lineage: dict, model_dir: Path) -> dict | None:
    data = lineage.get("data") or {}
    if not data:
        return None
    files = [f for f in data.get("files") or [] if isinstance(f, dict)]
    shots = data.get("shots", len(files))
    column = f", image column `{data['image_column']}`" if data.get("image_column") else ""
    for key in ("config", "split", "revision"):  # which part of a dataset (load_dataset's name/split/revision)
        if data.get(key):
            column += f", {key} `{data[key]}`"
    seed = f", drawn with shot seed {data['shot_seed']}" if data.get("shot_seed") is not None else ""
    text = f"{shots} images from {_display(data.get('id'), model_dir, data.get('local', False))}{seed}{column}."
    if data.get("files_digest"):
        text += (f" SHA-256 of the concatenated per-image SHA-256 digests, in training order: "
                 f"`{data['files_digest']}`.")
    return {"text": text, "files": [{"name": f.get("name", "?"), "sha256": f.get("sha256", "?")} for f in files]}


def _discriminator_text(model_dir: Path, lineage: dict) -> str:
    if not (model_dir / DISCRIMINATOR_SUBFOLDER / WEIGHTS_NAME).is_file():
        return "not included"
    origin = (lineage.get("training") or {}).get("discriminator") or lineage.get("discriminator")
    if lineage.get("kind") == "trained":
        origin = "trained"  # from scratch there is no base model whose D could have been missing
    how = {"source": ", adapted together with the generator from the base model's discriminator",
           "fresh": ", trained from a fresh initialisation (the base model had none)",
           "trained": ", trained with the generator",
           "converted": ", converted with the generator"}.get(origin, "")
    return f"included in `discriminator/`{how} (`AutoDiscriminator.from_pretrained`)"


def _limitations(kind: str | None, lineage: dict) -> list[str]:
    shots = (lineage.get("data") or {}).get("shots")
    lines = [("Intended use: research on few-shot generative adaptation, comparisons between adaptation methods, "
              "demos and teaching. It generates images from random latent codes; it takes no condition or prompt.")]
    if kind == "adapted":
        lines.append(f"Adapted from {shots if shots is not None else 'a few'} images: it covers little more than "
                     "their variety and can reproduce them closely (memorization). Compare samples with the shots "
                     "(`fsgen evaluate --metrics memorization`) before relying on its outputs.")
    if kind == "trained":
        lines.append("Trained from scratch: its quality follows the training budget recorded above (steps, batch size, "
                     "wall time); look at the samples before adapting from it or drawing conclusions.")
    lines += [
        "It inherits the biases and the licence restrictions of its base model and of its training data.",
        ("Do not present generated images as real photographs, or use them to impersonate or identify people; "
         "generated faces can resemble real people of the training data."),
        ("Metric values depend on their protocol (sample count, reference set, feature extractor): compare "
         "them only with results computed under the same protocol."),
    ]
    return lines


CARD_KWARGS = ("tags", "datasets", "language", "license")


def _apply_card_kwargs(card_data, card_kwargs: dict | None) -> None:
    """``model_card_kwargs`` of save_pretrained/push_to_hub: extra tags/datasets/language, or a licence id."""
    unknown = sorted(set(card_kwargs or {}) - set(CARD_KWARGS))
    if unknown:
        raise FsgenError(f"model_card_kwargs {', '.join(unknown)} not supported: use {', '.join(CARD_KWARGS)}")
    for key in ("tags", "datasets", "language"):
        value = (card_kwargs or {}).get(key)
        if value:
            extra = [value] if isinstance(value, str) else [str(v) for v in value]
            card_data[key] = list(dict.fromkeys([*(card_data.get(key) or []), *extra]))
    license_id = (card_kwargs or {}).get("license")
    if license_id:
        if license_id not in HUB_LICENSES:
            raise FsgenError(f"license {license_id!r} is not a Hub licence id: use one of the ids of "
                             "https://huggingface.co/docs/hub/repositories-licenses, or 'other'")
        card_data["license"] = license_id
        for key in ("license_name", "license_link"):
            if license_id != "other" and card_data.get(key):
                card_data[key] = None


def render_model_card(model_dir: str | os.PathLike, *, repo_id: str | None = None,
                      card_kwargs: dict | None = None) -> str:
    """The README.md text for ``model_dir`` (a complete card with YAML metadata); nothing is written."""
    from huggingface_hub import ModelCard, ModelCardData

    model_dir = Path(model_dir)
    folder = read_model_folder(model_dir)
    config, lineage_or_none, records = folder.config, folder.lineage, folder.metrics
    lineage = lineage_or_none or {}
    kind = lineage.get("kind") if lineage_or_none is not None else None
    architecture = str(config["architecture"])
    resolution = config.get("resolution", "?")
    base = lineage.get("base_model") or {}
    method = lineage.get("method") if kind == "adapted" else None
    method = method if isinstance(method, dict) and method.get("name") else None
    data = lineage.get("data") or {}
    title = (repo_id or "").split("/")[-1] or model_dir.resolve().name

    base_id = _hub_id(base.get("id"), model_dir) if kind in ("adapted", "converted") and not base.get("local") else None
    dataset_id = None if data.get("local") else _hub_id(data.get("id"), model_dir)
    license_fields, license_text = _license(lineage_or_none)
    tags = ["gan", LIBRARY_NAME, architecture]
    if kind == "adapted":
        tags[1:1] = ["few-shot"]
        if method:
            tags.append(str(method["name"]))
    published = published_metrics(records, lineage_or_none)
    eval_results, metric_rows = _eval_results(published, model_dir)
    card_data = ModelCardData(
        library_name=LIBRARY_NAME, pipeline_tag=PIPELINE_TAG, tags=tags, base_model=base_id,
        datasets=[dataset_id] if dataset_id else None, model_name=title if eval_results else None,
        eval_results=eval_results or None, **license_fields,
    )
    if base_id and kind == "adapted":
        card_data["base_model_relation"] = "finetune"  # all weights derive from the base model's
    _apply_card_kwargs(card_data, card_kwargs)

    base_disp = _display(base.get("id"), model_dir, base.get("local", False))
    if base.get("commit"):
        base_disp += f" (commit `{str(base['commit'])[:10]}`)"
    elif base.get("revision"):
        base_disp += f" (revision `{base['revision']}`)"
    shots = data.get("shots", "?")
    if kind == "adapted":
        how = f" with **{method['name']}**" if method else ""
        summary = (f"A {architecture} generator adapted from {base_disp} to {shots} images of "
                   f"{_display(data.get('id'), model_dir, data.get('local', False))}{how}, made with fsgen_hub.")
        kind_text = f"few-shot adaptation ({shots} shots)"
    elif kind == "trained":
        summary = f"A {architecture} generator trained from scratch on {shots} images of " \
                  f"{_display(data.get('id'), model_dir, data.get('local', False))} with fsgen_hub."
        kind_text = "trained from scratch"
    elif kind == "converted":
        summary = f"The {architecture} generator of {base_disp}, converted to the fsgen_hub format (weights unchanged)."
        kind_text = "converted checkpoint"
    else:
        summary = f"A {architecture} generator in the fsgen_hub format. The folder has no lineage.json: how " \
                  "it was made is not recorded."
        kind_text = "not recorded (no lineage.json)"
    if lineage.get("status"):  # e.g. a source model still in training says how far it is
        summary += f"\n\n> **Status:** {lineage['status']}"
    conversion = None
    if kind == "converted":
        info = lineage.get("conversion") or {}
        conversion = {"source_file": info.get("source_file") or base.get("id") or "?",
                      "format": info.get("format"), "sha256": info.get("sha256")}
    method_ctx = None
    if method:
        method_ctx = {"name": method["name"], "paper": method.get("paper"),
                      "description": (method.get("description") or "").rstrip(".") + "." if method.get("description")
                      else f"The `{method['name']}` adaptation method of fsgen_hub (`fsgen methods` describes it).",
                      "config_json": json.dumps(method.get("config") or {}, indent=2, sort_keys=True, default=str)}
    pruning = (lineage.get("artifacts") or {}).get("pruning_plot")
    best = lineage.get("best_checkpoint")
    best = best if isinstance(best, dict) and best.get("used_evaluation_set") else None
    seeds = sorted({str((r.get("protocol") or {}).get("seed", "?")) for r in published})

    card = ModelCard.from_template(
        card_data,
        template_path=str(TEMPLATE_PATH),
        title=title,
        summary=summary,
        repo_ref=repo_id or "REPO_ID",
        repo_placeholder=repo_id is None,
        folder_name=model_dir.name,
        resolution=resolution,
        z_dim=config.get("z_dim") or config.get("nz") or config.get("style_dim"),
        architecture=architecture,
        kind_text=kind_text,
        base_text=base_disp if kind in ("adapted", "converted") else None,
        discriminator_text=_discriminator_text(model_dir, lineage),
        fsgen_version=config.get("fsgen_hub_version") or __version__,
        images=_images(model_dir, lineage),
        method=method_ctx,
        pruning_plot=pruning if pruning and (model_dir / pruning).is_file() else None,
        conversion=conversion,
        training=_training_rows(lineage),
        data=_data_section(lineage, model_dir),
        metrics=metric_rows,
        shots_reference=any(row["reference"] == "the training shots" for row in metric_rows),
        metrics_seed=", ".join(seeds),
        best=best,
        license_text=license_text,
        data_terms=base.get("data_terms") or lineage.get("data_terms"),
        limitations=_limitations(kind, lineage),
    )
    core = str(card).rstrip("\n") + "\n"
    return core + "\n" + _MARKER.format(digest=hashlib.sha256(core.encode("utf-8")).hexdigest()) + "\n"


def write_model_card(model_dir: str | os.PathLike, *, repo_id: str | None = None,
                     card_kwargs: dict | None = None) -> Path:
    """Render and (atomically) write ``model_dir/README.md``; returns its path. Overwrites an existing card."""
    from fsgen_hub.utils.io import atomic_path

    text = render_model_card(model_dir, repo_id=repo_id, card_kwargs=card_kwargs)
    path = Path(model_dir) / CARD_NAME
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path


def is_unedited_generated_card(path: str | os.PathLike) -> bool:
    """True when ``path`` is a card written by fsgen_hub and not changed since (its digest still matches)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return False
    match = _MARKER_RE.search(text)
    return bool(match) and hashlib.sha256(text[: match.start()].encode("utf-8")).hexdigest() == match.group(1)


def refresh_model_card(model_dir: str | os.PathLike, repo_id: str | None = None, card_kwargs: dict | None = None) -> str:
    """Write the card when missing, regenerate it when it is an unedited generated one, keep it otherwise.

    Returns "written", "refreshed" or "kept".
    """
    path = Path(model_dir) / CARD_NAME
    if not path.is_file():
        write_model_card(model_dir, repo_id=repo_id, card_kwargs=card_kwargs)
        return "written"
    if is_unedited_generated_card(path):
        write_model_card(model_dir, repo_id=repo_id, card_kwargs=card_kwargs)
        return "refreshed"
    return "kept"
