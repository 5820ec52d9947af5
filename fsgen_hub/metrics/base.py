"""Evaluation (NVlabs metric_main style): metrics from the registry (``fsgen_hub.metrics.registry``) run on one sample set.

``evaluate(model, reference, metrics, ...)`` generates samples once, runs each metric, appends one
JSON line per result to ``<model folder>/metrics.jsonl`` (or ``output_jsonl``) and returns them.

Metrics that compare with the source generator (``correspondence``, ``collapse``; ``needs_source``)
get ``source_samples`` and ``adapted_samples``: the same ``paired_latents`` latents through the
source and the evaluated generator, constant noise, so a latent's two images differ only by the
adaptation. The source is ``evaluate(..., source=...)`` (a generator, zoo id or folder; the
trainer passes its frozen copy of the source); when not given, the evaluated model's lineage names
it (``base_model.id``, loaded with ``AutoGenerator``), else a one-line error asks for it.
A metric function may return several results (e.g. a share and a median ratio).
"""
from __future__ import annotations

import re
from pathlib import Path

import torch

from fsgen_hub.auto import AutoGenerator
from fsgen_hub.folder import read_lineage, weights_sha256
from fsgen_hub.metrics.registry import MetricResult, resolve_metric
from fsgen_hub.utils.constants import METRICS_NAME
from fsgen_hub.utils.errors import DataError, FsgenError
from fsgen_hub.utils.io import append_jsonl, portable_name

PAIRED_LATENTS = 100  # latents shared by source and adapted samples: 4,950 pairs for a rank correlation


def _as_images(source, resolution: int) -> tuple[torch.Tensor, str]:
    """A tensor in [0, 1] (N, 3, R, R) from a tensor in [-1, 1] or any --data source."""
    if isinstance(source, torch.Tensor):
        images = source.detach().float().cpu()
        return ((images.clamp(-1, 1) + 1) / 2), f"tensor[{len(images)}]"
    from fsgen_hub.data import load_images

    images, _, data_id = load_images(source, resolution, return_id=True)
    return (images + 1) / 2, data_id


@torch.no_grad()
def generate(G, num: int, seed: int, batch_size: int, device) -> torch.Tensor:
    return G.sample(num, seed=seed, batch_size=batch_size, device=device, output_type="pt", noise_mode="random")


def evaluate(
    model,
    reference,
    metrics: list[str] | str,
    num_samples: int | None = None,
    shots=None,
    seed: int = 0,
    batch_size: int = 32,
    device=None,
    output_jsonl: str | Path | None = None,
    step: int | None = None,
    exclude_from_reference=None,
    options: dict | None = None,
    source=None,
    paired_latents: int = PAIRED_LATENTS,
    model_name: str | None = None,
) -> list[MetricResult]:
    """Compute ``metrics`` for a generator (or model id/folder) against ``reference`` images.

    ``source``: the unadapted generator (module, zoo id or folder) for the metrics that need it;
    default: the model's lineage ``base_model``. ``paired_latents``: latents those metrics share.
    """
    names = [m.strip() for m in (metrics.split(",") if isinstance(metrics, str) else metrics) if m.strip()]
    specs = [resolve_metric(name) for name in names]
    for spec in specs:  # fail on missing weights before minutes of sampling, not after
        if spec.check is not None:
            spec.check(**(options or {}))
    if not isinstance(model, torch.nn.Module):
        model_name = str(model)
        G = AutoGenerator.from_pretrained(model)
        if output_jsonl is None and Path(model_name).is_dir():
            output_jsonl = Path(model_name) / METRICS_NAME
    else:
        G = model
        if model_name is None:  # a generator passed in: named after where it was loaded from, unless named
            model_name = getattr(G, "source_info", {}).get("model_id") if hasattr(G, "source_info") else None
    device = torch.device(device) if device is not None else G.device
    ref_images, ref_id = _as_images(reference, G.resolution)
    if exclude_from_reference is not None:
        ref_images = drop_near_duplicates(ref_images, _as_images(exclude_from_reference, G.resolution)[0])
        if not len(ref_images):
            raise DataError(f"every reference image of {ref_id} matches an excluded (training) image: "
                            "give a reference set beyond the shots, or do not exclude them")
    shot_images = _as_images(shots, G.resolution)[0] if shots is not None else None
    needed = max(num_samples or spec.num_samples for spec in specs)
    paired = {}
    if any(spec.needs_source for spec in specs):
        source_G, source_name = _source_generator(G, source, [s.name for s in specs if s.needs_source])
        z = G.make_latents(paired_latents, seed=seed)
        paired = {"source_samples": source_G.sample(paired_latents, z=z, seed=seed, batch_size=batch_size,
                                                    device=source_G.device, output_type="pt", noise_mode="const"),
                  "adapted_samples": G.sample(paired_latents, z=z, seed=seed, batch_size=batch_size, device=device,
                                              output_type="pt", noise_mode="const")}
    fake = generate(G, needed, seed, batch_size, device)
    results = []
    for spec in specs:
        n = num_samples or spec.num_samples
        extra = paired if spec.needs_source else {}
        returned = spec.fn(fake[:n], ref_images, shot_images, **extra, **(options or {}))
        if not isinstance(returned, list):  # one result: named by the protocol; several: by the metric function
            returned.metric = spec.name if num_samples is None else _rename(spec.name, n)
        for result in returned if isinstance(returned, list) else [returned]:
            result.protocol.update({"num_samples": n, "num_reference": len(ref_images), "reference": portable_name(ref_id),
                                    "resolution": G.resolution, "seed": seed})
            if spec.needs_source:
                result.protocol.update({"paired_latents": paired_latents, "noise_mode": "const",
                                        "source": portable_name(source_name)})
            result.model, result.step = portable_name(model_name), step
            results.append(result)
            if output_jsonl is not None:
                append_jsonl(output_jsonl, result.to_record())
    return results


def _source_generator(G, source, needing: list[str]):
    """The unadapted generator the ``needs_source`` metrics compare with, and how to name it in the protocol."""
    if isinstance(source, torch.nn.Module):
        return source, (getattr(source, "source_info", None) or {}).get("model_id") or "the source generator given"
    recorded = None  # the digest of the weights the model was adapted from, when the source comes from its lineage
    if source is None:
        local_dir = (getattr(G, "source_info", None) or {}).get("local_dir")
        base = ((read_lineage(local_dir) if local_dir else None) or {}).get("base_model") or {}
        source, recorded = base.get("id"), base.get("sha256")
        if source is None:
            raise FsgenError(f"{', '.join(needing)} compare the model with its source generator, and its lineage names "
                             "none: pass the source (evaluate(..., source=ID or folder), --source)")
    loaded = AutoGenerator.from_pretrained(source)
    found = weights_sha256(loaded.source_info.get("local_dir")) if recorded else None
    if found and found != recorded:
        raise FsgenError(f"{source} now holds other weights than the model was adapted from (sha256 {found[:12]} "
                         f"instead of {recorded[:12]}), so {', '.join(needing)} would compare with the wrong "
                         "source: pass the original source folder (evaluate(..., source=FOLDER), --source)")
    return loaded, str(source)


def _rename(name: str, n: int) -> str:
    """Keep the protocol honest in the name: fid5k evaluated on 1,000 samples is fid1k."""
    match = re.fullmatch(r"(fid|kid|intra_lpips)(\d+)k", name)
    if match and n % 1000 == 0:
        return f"{match.group(1)}{n // 1000}k"
    if match:
        return f"{match.group(1)}_{n}"
    return name


def drop_near_duplicates(reference: torch.Tensor, exclude: torch.Tensor, tol: float = 0.02) -> torch.Tensor:
    """Reference images without those matching ``exclude`` by content (mean abs pixel distance < tol)."""
    size = 32
    small = lambda x: torch.nn.functional.interpolate(x, size=(size, size), mode="area").flatten(1)  # noqa: E731
    distances = torch.cdist(small(reference), small(exclude), p=1) / (3 * size * size)
    return reference[distances.min(1).values >= tol]
