"""Training arguments: one dataclass, each field with its help text; the CLI is generated from it."""
from __future__ import annotations

import argparse
import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, get_type_hints

from fsgen_hub.utils.constants import LINEAGE_NAME
from fsgen_hub.utils.errors import FsgenError

REPORT_TO = ("tensorboard", "wandb", "all", "none")
# Recorded in logs/run_args.json but not replayed by --config: a replay is a new run in a new folder.
NOT_REPLAYED = ("output_dir", "resume", "push_to_hub")


def _help(text: str, **kw) -> dict:
    return {"metadata": {"help": text}, **kw}


@dataclass
class TrainingArguments:
    source: str | None = field(default=None, **_help("source model: zoo id, hub id or folder (default: the zoo's offline fsgen/stylegan2-faces64, UTKFace non-commercial terms)"))
    data: str | None = field(default=None, **_help("target images: folder, dataset folder/parquet or hub dataset id (default: the 10 embedded emoji faces)"))
    shots: int | None = field(default=10, **_help("number of target images to use (all when 0)"))
    shot_seed: int = field(default=0, **_help("seed of the shot selection"))
    image_column: str | None = field(default=None, **_help("image column of a dataset (detected when omitted)"))
    data_config: str | None = field(default=None, **_help("dataset configuration (subset) name, as load_dataset(name=...)"))
    data_split: str = field(default="train", **_help("dataset split, as load_dataset(split=...)"))
    data_revision: str | None = field(default=None, **_help("hub dataset revision (branch, tag or commit)"))
    method: str | None = field(default=None, **_help("adaptation method (`fsgen methods`); default dap (finetune for the no-argument demo run)"))
    method_options: dict[str, Any] = field(default_factory=dict, **_help("method config as JSON or key=value pairs"))
    steps: int = field(default=300, **_help("training iterations"))
    # Settings left unset (None) take the method's recipe (`fsgen methods`), then the architecture's
    # defaults, then GLOBAL_DEFAULTS: a method reproduces its paper's training without the user
    # having to know it, and any flag given explicitly wins.
    batch_size: int | None = field(default=None, **_help("images per step and process; default per method (RICK/DAP 2), else 8"))
    lr_g: float | None = field(default=None, **_help("generator learning rate (Adam); default per method, else per architecture: StyleGAN2 2e-3, DCGAN 2e-4"))
    lr_d: float | None = field(default=None, **_help("discriminator learning rate (Adam); default as --lr-g"))
    beta1: float | None = field(default=None, **_help("Adam beta1; default StyleGAN2 0, DCGAN 0.5"))
    beta2: float | None = field(default=None, **_help("Adam beta2; default StyleGAN2 0.99, DCGAN 0.999"))
    lazy_regularization: bool | None = field(default=None, **_help("StyleGAN2's lazy-regularisation correction of Adam: lr*k/(k+1), betas**(k/(k+1)) with k = --r1-every (D) / --pl-every (G); default per method, else false"))
    r1_gamma: float | None = field(default=None, **_help("R1 weight on real images (0 disables); default per method (RICK 10), else 1"))
    r1_every: int | None = field(default=None, **_help("lazy R1: apply every N steps with its weight scaled by N; default 16"))
    pl_weight: float | None = field(default=None, **_help("path-length regularisation weight (StyleGAN2 generators; 0 disables); default per method (RICK 2), else 0"))
    pl_every: int | None = field(default=None, **_help("lazy path-length regularisation: every N steps, weight scaled by N; default 4"))
    pl_batch_shrink: int | None = field(default=None, **_help("path-length batch = batch size // this; default 2"))
    style_mixing: float | None = field(default=None, **_help("probability of style mixing of the training fakes (StyleGAN2 generators); default per method (RICK 0.9), else 0"))
    warmup_steps: int | None = field(default=None, **_help("first steps train only the discriminator's --warmup-d-groups (G frozen); default per method (RICK 250), else 0"))
    warmup_d_groups: str | None = field(default=None, **_help("comma-separated D parameter groups (from_rgb, blocks, final) trained during the warm-up; default final"))
    g_groups: str | None = field(default=None, **_help("comma-separated G parameter groups trained (mapping, const, conv1, synthesis, torgb) or all; default per method, else all"))
    d_groups: str | None = field(default=None, **_help("comma-separated D parameter groups trained (from_rgb, blocks, final) or all; default per method, else all"))
    ema_half_life: float | None = field(default=None, **_help("EMA half-life of the generator in steps (default per method, else 5% of --steps)"))
    augment: str | None = field(default=None, **_help("DiffAugment policies, comma separated, or none; default per method (RICK none), else color,translation,cutout"))
    mirror: bool = field(default=False, **_help("x-flip augmentation: each real image is mirrored with probability 1/2 (NVlabs --mirror)"))
    mixed_precision: str = field(default="no", **_help("no, fp16 or bf16 (Accelerate)"))
    gradient_accumulation_steps: int = field(default=1, **_help("steps to accumulate before each optimizer step"))
    seed: int = field(default=0, **_help("seed of everything random in training"))
    output_dir: str | None = field(default=None, **_help("run folder (default runs/<method>-<target>)"))
    save_every: int = field(default=100, **_help("checkpoint every N steps (0: only at the end)"))
    keep_checkpoints: int = field(default=2, **_help("number of checkpoint-N folders kept"))
    sample_every: int = field(default=100, **_help("sample grid of fixed latents every N steps"))
    log_every: int = field(default=10, **_help("JSONL/TensorBoard log every N steps"))
    report_to: str = field(default="tensorboard", **_help("experiment tracker: tensorboard, wandb, all or none (Accelerate log_with)"))
    resume: str | None = field(default=None, **_help("'latest' or a checkpoint folder to resume from"))
    push_to_hub: str | None = field(default=None, **_help("hub repo id to push the finished model to"))
    eval_every: int = field(default=0, **_help("evaluate every N steps (0: only at the end when --eval-metrics is set)"))
    eval_metrics: str = field(default="", **_help("metrics to compute during/after training (default for adaptation: swd,msssim_diversity,memorization, plus fid/kid/intra_lpips when their weights are configured)"))
    no_eval: bool = field(default=False, **_help("skip the evaluation at the end of an adaptation run (its card then has no metrics)"))
    eval_reference: str | None = field(default=None, **_help("reference images of the target domain for the metrics"))
    eval_num_samples: int = field(default=500, **_help("generated images per evaluation"))
    select_best: str | None = field(default=None, **_help("keep the generator with the best value of this metric (uses the evaluation set!)"))
    patience: int = field(default=0, **_help("stop when --select-best has not improved for N evaluations (0: never)"))
    device: str = field(default="auto", **_help("auto, cpu or cuda (multi-GPU: use accelerate launch)"))
    # from-scratch training (`fsgen train`)
    architecture: str | None = field(default=None, **_help("train from scratch: stylegan2 or dcgan (fsgen train)"))
    resolution: int = field(default=64, **_help("from scratch: image size"))
    model_config: dict[str, Any] = field(default_factory=dict, **_help("from scratch: architecture config (JSON)"))

    def validate(self) -> None:
        """Checks what is set (unset recipe settings are checked once filled)."""
        for name in ("steps", "batch_size", "r1_every", "pl_every", "pl_batch_shrink", "gradient_accumulation_steps", "keep_checkpoints"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise FsgenError(f"--{name.replace('_', '-')} must be at least 1")
        for name in ("r1_gamma", "pl_weight", "warmup_steps"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise FsgenError(f"--{name.replace('_', '-')} must not be negative")
        if self.style_mixing is not None and not 0 <= self.style_mixing <= 1:
            raise FsgenError("--style-mixing is a probability: give a value in [0, 1]")
        if self.warmup_steps is not None and self.warmup_steps >= self.steps:
            raise FsgenError(f"--warmup-steps {self.warmup_steps} leaves no generator step in --steps {self.steps}: "
                             "lower --warmup-steps or raise --steps")
        if self.patience < 0:
            raise FsgenError("--patience must be 0 (off) or a number of evaluations")
        if self.patience and not (self.select_best and self.eval_every):
            raise FsgenError("--patience needs --select-best METRIC and --eval-every N (it counts evaluations without improvement)")
        if self.mixed_precision not in ("no", "fp16", "bf16"):
            raise FsgenError("--mixed-precision must be no, fp16 or bf16")
        if (self.lr_g is not None and self.lr_g <= 0) or (self.lr_d is not None and self.lr_d <= 0):
            raise FsgenError("learning rates must be positive")
        if self.report_to not in REPORT_TO:
            raise FsgenError(f"--report-to must be one of {', '.join(REPORT_TO)}, not {self.report_to!r}")
        if self.no_eval and (self.eval_metrics or self.select_best):
            raise FsgenError("--no-eval contradicts --eval-metrics/--select-best: drop one of them")
        if self.eval_num_samples < 1:
            raise FsgenError("--eval-num-samples must be at least 1")

    def fill_defaults(self, defaults: dict[str, Any], source: str = "defaults") -> None:
        """Unset (None) settings take ``defaults``; settings given explicitly are kept."""
        names = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(defaults) - names)
        if unknown:
            raise FsgenError(f"{source}: unknown training setting(s) {', '.join(unknown)}")
        for name, value in defaults.items():
            if getattr(self, name) is None:
                setattr(self, name, value)

    def fill_optimizer_defaults(self, defaults: dict[str, float]) -> None:
        """Unset optimizer settings take the architecture's defaults (equalized-lr StyleGAN2 vs DCGAN)."""
        self.fill_defaults({k: defaults[k] for k in ("lr_g", "lr_d", "beta1", "beta2")}, "architecture")

    def groups(self, name: str) -> list[str] | None:
        """A comma-separated group setting as a list (None for all)."""
        value = getattr(self, name)
        if value is None or value.strip() in ("", "all"):
            return None
        return [g.strip() for g in value.split(",") if g.strip()]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# Fallbacks of the recipe settings when neither the method nor the architecture sets them.
GLOBAL_DEFAULTS: dict[str, Any] = {
    "batch_size": 8, "r1_gamma": 1.0, "r1_every": 16, "pl_weight": 0.0, "pl_every": 4, "pl_batch_shrink": 2,
    "style_mixing": 0.0, "warmup_steps": 0, "warmup_d_groups": "final", "g_groups": "all", "d_groups": "all",
    "augment": "color,translation,cutout", "lazy_regularization": False,
}


def _parse_bool(value: str) -> bool:
    lowered = str(value).strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {value!r}")


def parse_options(values: list[str] | None) -> dict[str, Any]:
    """``--method-option k=v`` (repeatable) or one JSON object: values parsed as JSON when possible."""
    options: dict[str, Any] = {}
    for value in values or []:
        value = value.strip()
        if value.startswith("{"):
            try:
                options.update(json.loads(value))
            except ValueError as exc:
                raise FsgenError(f"method options are not valid JSON: {exc}") from None
            continue
        if "=" not in value:
            raise FsgenError(f"method option {value!r} must look like key=value")
        key, raw = value.split("=", 1)
        try:
            options[key.strip().replace("-", "_")] = json.loads(raw)
        except ValueError:
            options[key.strip().replace("-", "_")] = raw
    return options


def add_arguments(parser: argparse.ArgumentParser, exclude: tuple[str, ...] = ()) -> None:
    hints = get_type_hints(TrainingArguments)
    for f in dataclasses.fields(TrainingArguments):
        if f.name in exclude:
            continue
        flag = "--" + f.name.replace("_", "-")
        help_text = f.metadata.get("help", "").replace("%", "%%")  # argparse formats help with %
        if f.name in ("method_options", "model_config"):
            parser.add_argument(flag, action="append", default=None, metavar="K=V|JSON", help=help_text)
            continue
        hint = str(hints[f.name])
        if hint == "<class 'bool'>" or hint == "bool":
            parser.add_argument(flag, action="store_true", default=f.default, help=help_text)
            continue
        kind = _parse_bool if "bool" in hint else int if "int" in hint else float if "float" in hint else str
        default = f.default if f.default is not dataclasses.MISSING else None
        parser.add_argument(flag, type=kind, default=default, help=f"{help_text} (default: {default})")


def from_namespace(ns: argparse.Namespace, **overrides) -> TrainingArguments:
    values = {}
    for f in dataclasses.fields(TrainingArguments):
        if not hasattr(ns, f.name):
            continue
        value = getattr(ns, f.name)
        if f.name in ("method_options", "model_config"):
            value = parse_options(value)
        values[f.name] = value
    values.update(overrides)
    if values.get("shots") == 0:
        values["shots"] = None
    args = TrainingArguments(**values)
    args.validate()
    return args


def add_config_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default=None, metavar="FILE",
                        help="replay a run's recorded arguments: its logs/run_args.json, a YAML/JSON file of the same "
                             "keys, or a run folder; flags given on the command line win "
                             f"({', '.join(NOT_REPLAYED)} are not replayed)")
    parser.set_defaults(config_parser=parser)


def read_config_file(path: str) -> dict[str, Any]:
    """TrainingArguments values from a run folder, its run_args.json / lineage.json, or a YAML/JSON file."""
    from pathlib import Path

    file = Path(path)
    if file.is_dir():
        file = next((p for p in (file / "logs" / "run_args.json", file / LINEAGE_NAME) if p.is_file()), file / "logs" / "run_args.json")
    if not file.is_file():
        raise FsgenError(f"--config {path}: no such file (give a run folder, its logs/run_args.json or a YAML file)")
    try:
        text = file.read_text(encoding="utf-8")
        if file.suffix.lower() in (".yaml", ".yml"):
            import yaml

            values = yaml.safe_load(text)
        else:
            values = json.loads(text)
    except Exception as exc:  # noqa: BLE001 - OSError, JSON/Unicode errors, yaml.YAMLError: all one answer
        raise FsgenError(f"--config {file}: not readable JSON/YAML ({str(exc).splitlines()[0][:120]})") from None
    if isinstance(values, dict) and file.name == LINEAGE_NAME:
        values = (values.get("training") or {}).get("args")
    if not isinstance(values, dict):
        raise FsgenError(f"--config {file}: expected a mapping of argument names to values")
    known = {f.name for f in dataclasses.fields(TrainingArguments)}
    values = {k.replace("-", "_"): v for k, v in values.items()}
    unknown = sorted(set(values) - known)
    if unknown:
        raise FsgenError(f"--config {file}: unknown argument(s) {', '.join(unknown)}")
    return {k: v for k, v in values.items() if k not in NOT_REPLAYED}


def apply_config_file(parser: argparse.ArgumentParser, path: str) -> None:
    """Make the file's values the parser's defaults, so that flags given on the command line still win."""
    values = read_config_file(path)
    present = {action.dest for action in parser._actions}
    defaults = {}
    for key, value in values.items():
        if key not in present:
            continue  # e.g. `fsgen adapt --config` of a run made by `fsgen train`: from-scratch fields do not apply
        if key in ("method_options", "model_config"):
            value = [json.dumps(value)] if value else None  # append-action flags: more --method-option add to it
        defaults[key] = value
    parser.set_defaults(**defaults)
