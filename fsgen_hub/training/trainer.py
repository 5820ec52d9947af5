"""The adaptation trainer: Accelerate loop calling method hooks (it knows no method by name).

Same code on CPU, one GPU or several processes (``accelerate launch`` / ``torchrun``): replicas are
kept identical by an all-reduce of the gradients before each optimizer step instead of a DDP
wrapper, so methods may run D several times per step, mask filters or freeze parameters without
DDP's "unused parameters" and "marked ready twice" failures. Every step reseeds the RNG from
(seed, step, rank): a resumed run repeats the uninterrupted one bit for bit on CPU.
"""
from __future__ import annotations

import copy
import hashlib
import json
import logging
import math
import os
import shutil
import time
from contextlib import contextmanager
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import torch

from fsgen_hub.auto import AutoDiscriminator, AutoGenerator
from fsgen_hub.data import load_images
from fsgen_hub.folder import read_lineage, weights_sha256
from fsgen_hub.losses import d_logistic_loss, g_nonsaturating_loss, r1_penalty
from fsgen_hub.methods.base import AdaptationMethod, AdaptContext, StepBatch, average_gradients, get_method
from fsgen_hub.methods.recipes import for_run
from fsgen_hub.models.modeling_utils import model_class
from fsgen_hub.training import checkpointing as ckpt
from fsgen_hub.training.arguments import GLOBAL_DEFAULTS, TrainingArguments
from fsgen_hub.training.augment import DiffAugment, random_xflip
from fsgen_hub.training.lineage import build_lineage
from fsgen_hub.utils.constants import CONFIG_NAME, LINEAGE_NAME, METRICS_NAME, WEIGHTS_NAME, __version__
from fsgen_hub.utils.errors import FsgenError
from fsgen_hub.utils.images import save_image_grid
from fsgen_hub.utils.io import append_jsonl, write_json

logger = logging.getLogger(__name__)
CHECKPOINT_PREFIX = ckpt.CHECKPOINT_PREFIX
DEFAULT_METHOD = "dap"
# what a checkpoint must match to be resumed: another source, data set, method or architecture would
# continue a different run under this one's lineage
IDENTITY_FIELDS = {"source_sha256": "--source", "data_sha256": "--data/--shots/--shot-seed", "method": "--method",
                   "method_config": "--method-option", "architecture": "the model architecture"}


def _weights_digest(module: torch.nn.Module) -> str:
    h = hashlib.sha256()
    for key, value in sorted(module.state_dict().items()):
        h.update(key.encode())
        h.update(value.detach().float().cpu().numpy().tobytes())
    return h.hexdigest()


# `fsgen adapt` with no source and no data: the offline demo (the default source, the 64 px StyleGAN2 with its
# D, to the 10 embedded emoji) in a few CPU minutes, set by looking at the grids of 300-step runs (README "The
# main command"): fine-tuning at batch 8 with DiffAugment draws plainly emoji heads; DAP in the same budget
# (its RICK recipe spends 75 steps warming D up) still shows streaky faces or blurred blobs, the DigiFace DCGAN checkerboards.
# G_ema follows G closely enough to show 300 steps of adaptation.
EMBEDDED_DEFAULT_RUN: dict[str, Any] = {"method": "finetune", "batch_size": 8, "augment": "color,translation,cutout",
                                       "ema_half_life": 15.0}


@dataclass
class RunState:
    """Where the loop stands and what it carries from step to step: what a checkpoint's ``loop_state`` stores
    (its fields in this order, plus Accelerate's grad-scaler state under mixed precision)."""

    step: int = 0                    # steps done
    best: dict | None = None         # --select-best: {"metric", "value", "step", "weights"} of the best G_ema yet
    mean_path_length: float = 0.0    # StyleGAN2's running mean the path-length penalty pulls towards

    def to_tree(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def load_tree(self, tree: dict[str, Any]) -> None:
        for f in fields(self):
            if f.name in tree:
                setattr(self, f.name, tree[f.name])
        self.step = int(tree["step"])


@dataclass
class RunInputs:
    """What train() reads and checks before the run folder is created."""

    G: torch.nn.Module
    D: torch.nn.Module
    discriminator_origin: str        # "source", or "fresh" when the source shipped no discriminator
    base: dict                       # lineage.json's base_model
    images: torch.Tensor             # the shots, (N, 3, H, W) in [-1, 1], on the CPU
    shot_records: list[dict]         # name + sha256 of each shot
    data_id: Any


@dataclass
class Run:
    """What the loop's phases share once the run has started (built by ``AdaptationTrainer._start``)."""

    inputs: RunInputs
    ctx: AdaptContext
    G: torch.nn.Module               # ctx.G / ctx.D after the method's preparation
    D: torch.nn.Module
    G_ema: torch.nn.Module
    opt_g: Any                       # None when the method trains nothing in G (resp. D)
    opt_d: Any
    source_G: torch.nn.Module        # frozen copy of the source, for comparisons and source-relative metrics
    state: RunState
    fixed_z: torch.Tensor            # latents of the grids/ sample grids
    warmup_d_names: set[str] | None  # D parameters trained during --warmup-steps
    started: float = 0.0             # time.time() when the loop started
    stopped_early: bool = False      # --patience stopped the loop

    @property
    def checkpointed_modules(self) -> dict[str, torch.nn.Module]:
        return {"generator": self.G, "discriminator": self.D, "generator_ema": self.G_ema}


class AdaptationTrainer:
    def __init__(self, args: TrainingArguments, method: AdaptationMethod | None = None):
        args.validate()
        self.args = args
        self.from_scratch = args.architecture is not None
        self.embedded_default_run = args.source is None and args.data is None and not self.from_scratch
        if self.embedded_default_run:
            args.fill_defaults(EMBEDDED_DEFAULT_RUN, "the embedded default run")
        if method is None and not self.from_scratch:
            from fsgen_hub.methods.base import list_methods

            name = args.method or (DEFAULT_METHOD if DEFAULT_METHOD in list_methods() else "finetune")
            args.method = name
            method = get_method(name, args.method_options)
        self.method = method or AdaptationMethod()
        self.output_dir = Path(args.output_dir or default_output_dir(args))
        # set from the Accelerator once training starts; before, from torchrun/accelerate's environment
        self._is_main = os.environ.get("RANK", "0") == "0"

    # ------------------------------------------------------------------ set-up
    def _check_output_dir(self) -> Path | None:
        """The checkpoint to resume from (None for a fresh run); refuses folders a fresh run must not touch."""
        out, args = self.output_dir, self.args
        if out.exists() and not out.is_dir():
            raise FsgenError(f"--output-dir {out} is a file, not a folder: choose another --output-dir")
        checkpoints = ckpt.list_checkpoints(out)
        if args.resume:
            if args.resume == "latest":
                if not checkpoints:
                    raise FsgenError(f"--resume latest: no complete {CHECKPOINT_PREFIX}<step> folder in {out}")
                return checkpoints[-1]
            path = Path(args.resume)
            if not ckpt.is_complete_checkpoint(path):
                raise FsgenError(f"--resume {path}: not a complete checkpoint folder (no {ckpt.TRAINER_STATE_NAME} "
                                 "listing its files): pass a checkpoint-<step> folder or --resume latest")
            return path
        if (out / LINEAGE_NAME).is_file() and (out / WEIGHTS_NAME).is_file():
            raise FsgenError(f"{out} already holds a finished run: choose another --output-dir or delete it")
        if checkpoints:
            raise FsgenError(f"{out} holds checkpoints of an unfinished run: pass --resume latest or another --output-dir")
        if out.is_dir() and any(out.iterdir()):
            what = "a model" if (out / CONFIG_NAME).exists() or (out / WEIGHTS_NAME).exists() else "files"
            raise FsgenError(f"{out} already holds {what} that a new run would overwrite: choose another --output-dir "
                             "or empty it")
        return None

    def _build_models(self):
        args = self.args
        if self.from_scratch:
            config_class = model_class(args.architecture, "generator").config_class
            config = config_class.from_dict({"resolution": args.resolution, **args.model_config})
            G = model_class(args.architecture, "generator")(config)
            D = model_class(args.architecture, "discriminator")(config)
            if hasattr(G, "mean_latent"):
                G.mean_latent(512)
            return G, D, "fresh", {"id": None, "architecture": args.architecture}
        from fsgen_hub.zoo import DEFAULT_SOURCE

        source = args.source or DEFAULT_SOURCE
        args.source = source
        G = AutoGenerator.from_pretrained(source)
        try:
            D, d_origin = AutoDiscriminator.from_pretrained(source), "source"
        except FsgenError:
            D = model_class(G.architecture, "discriminator")(copy.deepcopy(G.config))
            d_origin = "fresh"
            logger.warning("%s has no discriminator: starting from a freshly initialised one", source)
        source_lineage = read_lineage(G.source_info["local_dir"]) or {}
        base = {
            "id": source,
            "revision": G.source_info.get("revision"),
            "commit": G.source_info.get("commit"),
            "architecture": G.architecture,
            "license": (source_lineage.get("base_model") or {}).get("license") or _zoo_license(source),
            # which weights: a zoo id (and a hub branch) can name other weights later; metrics that reload the
            # source by its id check this digest
            "sha256": weights_sha256(G.source_info.get("local_dir")),
        }
        terms = source_lineage.get("data_terms") or _zoo_terms(source)
        if terms:
            base["data_terms"] = terms
        return G, D, d_origin, base

    # ------------------------------------------------------------------ main loop
    def train(self, *, push: bool = True) -> Path:
        """Train, evaluate and write the model folder; returns it. With ``args.push_to_hub`` set the folder is then
        published by ``push_to_hub()``, unless ``push=False`` (``fsgen adapt`` pushes itself, after its summary)."""
        from fsgen_hub.utils.extras import require

        require("accelerate", "training (fsgen adapt / fsgen train)")
        args, method = self.args, self.method
        if not args.eval_metrics and not args.no_eval and not self.from_scratch:
            # every finished adaptation is evaluated, so that every card carries numbers with their protocol
            from fsgen_hub.metrics.registry import default_metrics

            args.eval_metrics = ",".join(default_metrics())
        resume_from = self._check_output_dir()
        # every input is read and checked before the output folder is created: a bad input leaves nothing behind
        torch.manual_seed(args.seed)
        G, D, d_origin, base = self._build_models()
        # unset settings: the method's recipe for this generator (fitted to the run's length and to a fresh D),
        # then the architecture's, then the fallbacks
        recipe = for_run(method.training_defaults(G), args.steps, fresh_discriminator=d_origin == "fresh")
        args.fill_defaults(recipe, f"method {method.name or 'default'}")
        args.fill_optimizer_defaults(G.optimizer_defaults)
        args.fill_defaults(GLOBAL_DEFAULTS)
        args.validate()
        self._select_trained_groups(G, D)
        images, shot_records, data_id = load_images(
            args.data, G.resolution, shots=args.shots, shot_seed=args.shot_seed, image_column=args.image_column, return_id=True,
            config=args.data_config, split=args.data_split, revision=args.data_revision,
        )
        self.identity = self._run_identity(G, shot_records)
        if resume_from is not None:
            self._check_identity(resume_from)
        inputs = RunInputs(G=G, D=D, discriminator_origin=d_origin, base=base, images=images,
                           shot_records=shot_records, data_id=data_id)
        created = _first_missing_ancestor(self.output_dir)
        try:
            self._train(resume_from, inputs)
        except Exception:
            if resume_from is None and os.environ.get("RANK", "0") == "0":
                self._discard_failed_run(created)
            raise
        if push and args.push_to_hub:
            self.push_to_hub()
        return self.output_dir

    def push_to_hub(self, repo_id: str | None = None, **push_kwargs) -> str | None:
        """Publish the finished run folder to ``repo_id`` (default ``args.push_to_hub``) through
        ``fsgen_hub.publish.push_folder``, the one push path; returns the repo URL (None on the other processes of a
        multi-process run: only the main one pushes). ``push_kwargs``: ``push_folder``'s (private, token, revision,
        commit_message, create_pr)."""
        from fsgen_hub.publish import push_folder

        repo_id = repo_id or self.args.push_to_hub
        if not repo_id:
            raise FsgenError("push_to_hub needs a hub repo id: pass one, or set TrainingArguments(push_to_hub=...)")
        if not self._is_main:
            return None
        try:
            url = push_folder(self.output_dir, repo_id, **push_kwargs)
        except FsgenError as exc:  # same error type, one line, plus what a failed push leaves behind
            exc.args = (f"{exc} (the model folder {self.output_dir} is complete: `fsgen push {self.output_dir} "
                        f"{repo_id}` publishes it)",)
            raise
        print(f"pushed to {url}")
        return url

    def _discard_failed_run(self, created: Path | None) -> None:
        """A fresh run that failed before its first checkpoint leaves the file system as it found it.

        Once a checkpoint exists the folder is kept: the error names the last good checkpoint to resume from.
        """
        if ckpt.list_checkpoints(self.output_dir):
            return
        if created is not None:
            shutil.rmtree(created, ignore_errors=True)
        elif self.output_dir.is_dir():  # it existed, empty (checked at the start): empty it again
            for child in self.output_dir.iterdir():
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child, ignore_errors=True)
                else:
                    child.unlink(missing_ok=True)

    def _run_identity(self, G, shot_records: list[dict]) -> dict:
        """What ties a checkpoint to its run: source weights, training images, method and architecture."""
        method = self.method
        identity = {
            "source_sha256": None if self.from_scratch else _weights_digest(G),
            "data_sha256": hashlib.sha256("".join(r["sha256"] for r in shot_records).encode()).hexdigest(),
            "method": None if self.from_scratch else method.name,
            "method_config": None if self.from_scratch else method.config.to_dict(),
            "architecture": {k: v for k, v in G.config_dict().items() if k != "fsgen_hub_version"},
        }
        return json.loads(json.dumps(identity, sort_keys=True, default=str))  # as it reads back from JSON

    def _check_identity(self, checkpoint: Path) -> None:
        recorded = ckpt.read_json(checkpoint / ckpt.TRAINER_STATE_NAME).get("run")
        if not isinstance(recorded, dict):
            raise FsgenError(f"{checkpoint} records no run identity: it cannot be resumed, start a new --output-dir")
        for key, flag in IDENTITY_FIELDS.items():
            if recorded.get(key) != self.identity[key]:
                raise FsgenError(
                    f"{checkpoint} belongs to a run with another {flag}: resume with the arguments of that run "
                    f"(see {checkpoint.parent / 'logs' / 'run_args.json'}) or choose another --output-dir"
                )

    def _train(self, resume_from: Path | None, inputs: RunInputs) -> None:
        run = self._start(resume_from, inputs)
        args, ctx, state, accelerator = self.args, run.ctx, run.state, run.ctx.accelerator
        progress = _progress(range(state.step, args.steps), self._is_main, initial=state.step, total=args.steps,
                             desc="train" if self.from_scratch else "adapt")
        run.started = time.time()
        for step in progress:
            values = self._train_step(run, step)  # D step, G step, path length, EMA
            self._check_finite(values, step)
            self.method.on_step_end(ctx, step)
            state.step = step + 1
            self._log_step(run, step, values, progress)
            self._save_sample_grid(run, step)
            run.stopped_early = self._evaluate_during_training(run, step)
            self._checkpoint_if_due(run, step)
            if run.stopped_early:
                logger.info("%s has not improved for %d evaluations: stopping at step %d", args.select_best,
                            args.patience, step + 1)
                break
        wall_time_s = time.time() - run.started
        replicas_identical = self._check_replicas(accelerator, run.G)
        if args.eval_metrics and not run.stopped_early:  # an early stop has just evaluated this step
            self._evaluate(run, state.step)
        accelerator.wait_for_everyone()
        if self._is_main:
            self._finish(run, wall_time_s=wall_time_s, replicas_identical=replicas_identical)
        accelerator.wait_for_everyone()
        accelerator.end_training()  # also tears down the process group

    def _start(self, resume_from: Path | None, inputs: RunInputs) -> Run:
        """The Accelerator, the method's preparation, G_ema, the optimizers and the run state (from the checkpoint
        when resuming): what the loop's phases share."""
        from accelerate import Accelerator
        from accelerate.utils import ProjectConfiguration

        args, method = self.args, self.method
        log_with = _trackers(args.report_to)
        cpu = args.device == "cpu" or (args.device == "auto" and not torch.cuda.is_available())
        accelerator = Accelerator(
            cpu=cpu,
            mixed_precision=args.mixed_precision,
            gradient_accumulation_steps=args.gradient_accumulation_steps,
            log_with=log_with,
            project_config=ProjectConfiguration(project_dir=str(self.output_dir), logging_dir=str(self.output_dir / "logs")),
        )
        main = self._is_main = accelerator.is_main_process
        # created only now: with several processes, creating the Accelerator waits for every process, so all
        # of them have checked the output folder (empty, no finished run) before any of them writes into it
        (self.output_dir / "logs").mkdir(parents=True, exist_ok=True)
        source_G = copy.deepcopy(inputs.G).eval().requires_grad_(False)
        G, D = inputs.G.to(accelerator.device).train(), inputs.D.to(accelerator.device).train()

        def log(values: dict, step: int | None = None) -> None:
            if main:
                accelerator.log(values, step=step if step is not None else ctx.step)

        ctx = AdaptContext(G=G, D=D, G_ema=G, accelerator=accelerator, args=args,
                           train_images=inputs.images.to(accelerator.device), augment=DiffAugment(args.augment), log=log,
                           output_dir=self.output_dir, discriminator_origin=inputs.discriminator_origin,
                           ema_beta=0.5 ** (1.0 / max(1.0, args.ema_half_life or 0.05 * args.steps)))
        torch.manual_seed(args.seed)
        method.prepare(ctx)
        G, D = ctx.G, ctx.D
        ctx.G_ema = G_ema = copy.deepcopy(G).eval().requires_grad_(False)
        g_params = list(method.generator_parameters(ctx))
        d_params = list(method.discriminator_parameters(ctx)) if method.uses_discriminator else []
        opt_g = self._adam(g_params, args.lr_g, args.pl_every if self._path_length_on(G) else None)
        opt_d = self._adam(d_params, args.lr_d, args.r1_every if args.r1_gamma > 0 else None)
        optimizers = [o for o in (opt_g, opt_d) if o is not None]
        prepared = accelerator.prepare(*optimizers)
        prepared = prepared if isinstance(prepared, (list, tuple)) else [prepared]
        opt_g = prepared[0] if opt_g is not None else None
        opt_d = prepared[-1] if opt_d is not None else None
        ctx.optimizers = {k: o for k, o in (("G", opt_g), ("D", opt_d)) if o is not None}
        run = Run(inputs=inputs, ctx=ctx, G=G, D=D, G_ema=G_ema, opt_g=opt_g, opt_d=opt_d, source_G=source_G,
                  state=RunState(), fixed_z=source_G.make_latents(16, seed=args.seed),
                  warmup_d_names=self._group_names(D, args.groups("warmup_d_groups"), "--warmup-d-groups")
                  if args.warmup_steps else None)
        if resume_from is not None:
            self._load_checkpoint(run, resume_from)
            logger.info("resumed from %s at step %d", resume_from, run.state.step)
        if main and log_with:
            # the TensorBoard run lands in logs/tensorboard/ (docs/CONTRACTS.md); wandb names its run after the folder
            accelerator.init_trackers("tensorboard" if args.report_to == "tensorboard" else "fsgen_hub",
                                      config=_flat_config(args), init_kwargs={"wandb": {"name": self.output_dir.name}})
        if main:
            write_json(self.output_dir / "logs" / "run_args.json", args.to_dict())
        return run

    # ------------------------------------------------------------------ phases
    def _train_step(self, run: Run, step: int) -> dict[str, float]:
        """One step: D (every step, only the warm-up groups during --warmup-steps), then G and, every --pl-every
        steps, the path-length step; then the EMA. Returns the logged values."""
        args, ctx, method = self.args, run.ctx, self.method
        accelerator, world = ctx.accelerator, ctx.accelerator.num_processes
        ctx.step = step
        torch.manual_seed(hash((args.seed, step, accelerator.process_index)) % (2**63))
        index = torch.randint(len(ctx.train_images), (args.batch_size,), device=accelerator.device)
        real_raw = ctx.train_images[index]
        if args.mirror:
            real_raw = random_xflip(real_raw)
        values: dict[str, float] = {}
        warming_up = step < args.warmup_steps  # D-only warm-up: G does not move
        with accelerator.accumulate(run.G, run.D):
            if method.uses_discriminator and run.opt_d is not None:
                values.update(self._d_step(ctx, real_raw, index, run.opt_d, step, world,
                                           run.warmup_d_names if warming_up else None))
            if run.opt_g is not None and not warming_up:
                values.update(self._g_step(ctx, run.opt_g, step, world))
                if self._path_length_on(run.G) and step % args.pl_every == 0:
                    values.update(self._path_length_step(ctx, run.opt_g, world, run.state))
        if world > 1:  # like DDP's broadcast_buffers: BN running stats follow rank 0
            for module in (run.G, run.D):
                for buffer in module.buffers():
                    torch.distributed.broadcast(buffer, 0)
        _ema_update(run.G_ema, accelerator.unwrap_model(run.G), ctx.ema_beta)
        return values

    def _check_finite(self, values: dict[str, float], step: int) -> None:
        args = self.args
        for key, value in values.items():
            if not math.isfinite(value):
                last = (ckpt.list_checkpoints(self.output_dir) or [None])[-1]
                raise FsgenError(
                    f"{key} became {value} at step {step}: lower --lr-g/--lr-d (now {args.lr_g}/{args.lr_d})"
                    + (f"; the last good checkpoint is {last}" if last else "")
                )

    def _log_step(self, run: Run, step: int, values: dict[str, float], progress) -> None:
        args = self.args
        if self._is_main and (step % args.log_every == 0 or step + 1 == args.steps):
            record = {"step": step, "time_s": round(time.time() - run.started, 3), **{k: round(v, 6) for k, v in values.items()}}
            append_jsonl(self.output_dir / "logs" / "train_log.jsonl", record)
            run.ctx.accelerator.log(values, step=step)
            if hasattr(progress, "set_postfix"):
                progress.set_postfix({k: f"{v:.3f}" for k, v in values.items() if k.startswith("loss")})

    def _save_sample_grid(self, run: Run, step: int) -> None:
        """grids/step_XXXXXX.png: G_ema on the same 16 latents every --sample-every steps."""
        args = self.args
        if self._is_main and args.sample_every and (step % args.sample_every == 0 or step + 1 == args.steps):
            grid = run.G_ema.sample(len(run.fixed_z), z=run.fixed_z, seed=args.seed, output_type="pt",
                                    device=run.ctx.accelerator.device)
            (self.output_dir / "grids").mkdir(exist_ok=True)
            save_image_grid(grid, self.output_dir / "grids" / f"step_{step:06d}.png")

    def _evaluate_during_training(self, run: Run, step: int) -> bool:
        """Evaluate every --eval-every steps (the last step is evaluated after the loop); True when --patience
        says stop."""
        args = self.args
        if args.eval_every and (step + 1) % args.eval_every == 0 and step + 1 < args.steps:
            self._evaluate(run, step + 1)
            return self._no_longer_improving(run.state, step + 1)
        return False

    def _checkpoint_if_due(self, run: Run, step: int) -> None:
        args = self.args
        final_step = step + 1 == args.steps or run.stopped_early
        # from scratch, the last step is checkpointed too: long trainings run in chunks (--resume latest
        # with a larger --steps) and must continue exactly where the previous chunk stopped
        if args.save_every and (self.from_scratch if final_step else (step + 1) % args.save_every == 0):
            self._save_checkpoint(run, step + 1)

    def _generate(self, ctx, z, return_features: bool = False):
        """ctx.G(z), style-mixed with probability --style-mixing (a second latent takes over from a
        random layer, as StyleGAN2/RICK/CDC training does) when the generator has a style space."""
        G = ctx.unwrap(ctx.G)
        p = self.args.style_mixing
        if p and G.has_style_space and z.ndim == 2 and self.method.allow_style_mixing(ctx, ctx.step) and float(torch.rand(())) < p:
            mix = {"mix_z": torch.randn_like(z), "mix_index": int(torch.randint(1, G.n_latent, ()))}
            return ctx.G(z, return_features=return_features, **mix)
        return ctx.G(z, return_features=return_features)

    def _path_length_on(self, G) -> bool:
        return bool(self.args.pl_weight) and getattr(G, "has_style_space", False)

    def _adam(self, params, lr, lazy_every):
        """Adam with StyleGAN2's lazy-regularisation correction when asked (a regularised step every k)."""
        if not params:
            return None
        args = self.args
        ratio = lazy_every / (lazy_every + 1) if args.lazy_regularization and lazy_every else 1.0
        return torch.optim.Adam(params, lr=lr * ratio, betas=(args.beta1**ratio, args.beta2**ratio))

    @staticmethod
    def _group_names(model, groups: list[str] | None, flag: str) -> set[str] | None:
        if groups is None or model is None:
            return None
        available = model.parameter_groups()
        unknown = [g for g in groups if g not in available]
        if unknown:
            raise FsgenError(f"{flag}: unknown parameter group(s) {', '.join(unknown)}; "
                             f"this {type(model).__name__} has {', '.join(available)} (or all)")
        return {name for g in groups for name in available[g]}

    def _select_trained_groups(self, G, D) -> None:
        """Parameters outside --g-groups/--d-groups stop requiring gradients (before the method's own
        preparation, which may freeze more or wrap layers)."""
        for model, flag in ((G, "g_groups"), (D, "d_groups")):
            names = self._group_names(model, self.args.groups(flag), "--" + flag.replace("_", "-"))
            if names is not None:
                for name, param in model.named_parameters():
                    if name not in names:
                        param.requires_grad_(False)

    def _path_length_step(self, ctx, opt_g, world, state: RunState) -> dict[str, float]:
        """StyleGAN2's lazy path-length regularisation: a separate G step every --pl-every steps."""
        args, method, accelerator = self.args, self.method, ctx.accelerator
        G = ctx.unwrap(ctx.G)
        opt_g.zero_grad(set_to_none=True)
        with accelerator.autocast():
            z = torch.randn(max(1, args.batch_size // args.pl_batch_shrink), G.z_dim, device=accelerator.device)
            mix = {}
            if args.style_mixing and float(torch.rand(())) < args.style_mixing:
                mix = {"mix_z": torch.randn_like(z), "mix_index": int(torch.randint(1, G.n_latent, ()))}
            ws = G.styles(z, **mix)
            if not ws.requires_grad:  # frozen mapping network: the penalty still needs d(image)/d(w)
                ws = ws.detach().requires_grad_(True)
            images = ctx.G(ws, input_space="w+")
            noise = torch.randn_like(images) / math.sqrt(images.shape[2] * images.shape[3])
            (grad,) = torch.autograd.grad((images * noise).sum(), ws, create_graph=True)
            lengths = grad.pow(2).sum(2).mean(1).sqrt()
            path_mean = state.mean_path_length + 0.01 * (lengths.mean() - state.mean_path_length)
            penalty = (lengths - path_mean).pow(2).mean()
            loss = args.pl_weight * args.pl_every * penalty + 0 * images[0, 0, 0, 0]
        accelerator.backward(loss)
        average_gradients(ctx.G.parameters(), world)
        method.after_backward(ctx, "G_reg")
        opt_g.step()
        method.after_optimizer_step(ctx, "G_reg")
        state.mean_path_length = float(path_mean.detach())
        return {"loss_pl": penalty.item(), "path_length": float(lengths.mean().detach())}

    def _d_step(self, ctx, real_raw, index, opt_d, step, world, only: set[str] | None = None) -> dict[str, float]:
        args, method, accelerator = self.args, self.method, ctx.accelerator
        opt_d.zero_grad(set_to_none=True)
        with accelerator.autocast():
            z = method.sample_latents(ctx, args.batch_size)
            with torch.no_grad():
                fake = self._generate(ctx, z)
            real = ctx.augment(real_raw)
            real_logits, real_feats = method.discriminate(ctx, real, real=True, step=step)
            fake_logits, fake_feats = method.discriminate(ctx, ctx.augment(fake.detach()), real=False, step=step)
            batch = StepBatch("D", step, real=real, real_raw=real_raw, real_indices=index, z=z, fake=fake,
                              real_logits=real_logits, fake_logits=fake_logits,
                              real_d_features=real_feats, fake_d_features=fake_feats)
            loss = d_logistic_loss(real_logits, fake_logits)
            extras = method.discriminator_loss(ctx, batch)
            values = {"loss_d_adv": loss.item()}
            for key, term in extras.items():
                loss = loss + term
                values[key] = term.item()
            if args.r1_gamma > 0 and step % args.r1_every == 0:
                real_r1 = real_raw.detach().requires_grad_(True)
                logits = ctx.D(ctx.augment(real_r1))
                r1 = r1_penalty(logits, real_r1)
                loss = loss + args.r1_gamma / 2 * r1 * args.r1_every
                values["r1"] = r1.item()
        values["loss_d"] = loss.item()
        accelerator.backward(loss)
        if only is not None:  # warm-up: only these D parameters move (Adam skips a None gradient)
            for name, param in ctx.unwrap(ctx.D).named_parameters():
                if name not in only:
                    param.grad = None
        average_gradients(ctx.D.parameters(), world)
        method.after_backward(ctx, "D")
        opt_d.step()
        method.after_optimizer_step(ctx, "D")
        return values

    def _g_step(self, ctx, opt_g, step, world) -> dict[str, float]:
        with _frozen_outside(ctx.D, opt_g):  # D's own gradients are not needed in the G phase
            return self._g_step_body(ctx, opt_g, step, world)

    def _g_step_body(self, ctx, opt_g, step, world) -> dict[str, float]:
        args, method, accelerator = self.args, self.method, ctx.accelerator
        opt_g.zero_grad(set_to_none=True)
        with accelerator.autocast():
            z = method.sample_latents(ctx, args.batch_size)
            fake, g_feats = self._generate(ctx, z, return_features=True)
            batch = StepBatch("G", step, z=z, fake=fake, fake_features=g_feats)
            loss = torch.zeros((), device=accelerator.device)
            values = {}
            if method.uses_discriminator and method.adversarial_weight:
                fake_logits, fake_d_feats = method.discriminate(ctx, ctx.augment(fake), real=False, step=step)
                batch.fake_logits, batch.fake_d_features = fake_logits, fake_d_feats
                adv = g_nonsaturating_loss(fake_logits)
                loss = loss + method.adversarial_weight * adv
                values["loss_g_adv"] = adv.item()
            for key, term in method.generator_loss(ctx, batch).items():
                loss = loss + term
                values[key] = term.item()
        values["loss_g"] = loss.item()
        accelerator.backward(loss)
        average_gradients(ctx.G.parameters(), world)
        method.after_backward(ctx, "G")
        opt_g.step()
        method.after_optimizer_step(ctx, "G")
        return values

    # ------------------------------------------------------------------ checkpoints
    def _save_checkpoint(self, run: Run, step: int) -> None:
        """checkpoint-<step>: safetensors + JSON only (see fsgen_hub.training.checkpointing), written by the main
        process into a temporary folder renamed at the end, so a checkpoint folder exists only once complete."""
        accelerator = run.ctx.accelerator
        final = self.output_dir / f"{CHECKPOINT_PREFIX}{step}"
        tmp = self.output_dir / f".{CHECKPOINT_PREFIX}{step}.tmp"
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
            files = [ckpt.save_module(accelerator.unwrap_model(m), tmp, name) for name, m in run.checkpointed_modules.items()]
            for name, optimizer in run.ctx.optimizers.items():
                files += ckpt.save_tree(optimizer.state_dict(), tmp, f"optimizer_{name}")
            files += ckpt.save_tree(self.method.state_dict(), tmp, "method_state")
            loop = {**run.state.to_tree(), "step": step}
            if accelerator.scaler is not None:
                loop["scaler"] = accelerator.scaler.state_dict()
            files += ckpt.save_tree(loop, tmp, "loop_state")
            write_json(tmp / ckpt.TRAINER_STATE_NAME, {
                "format": ckpt.CHECKPOINT_FORMAT, "format_version": ckpt.CHECKPOINT_FORMAT_VERSION, "step": step,
                "fsgen_hub_version": __version__, "run": self.identity, "files": sorted(files),
            })
            shutil.rmtree(final, ignore_errors=True)
            os.replace(tmp, final)
            for old in ckpt.list_checkpoints(self.output_dir)[: -self.args.keep_checkpoints]:
                shutil.rmtree(old, ignore_errors=True)
        accelerator.wait_for_everyone()

    def _load_checkpoint(self, run: Run, path: Path) -> None:
        accelerator = run.ctx.accelerator
        for name, module in run.checkpointed_modules.items():
            ckpt.load_module(accelerator.unwrap_model(module), path, name)
        try:
            for name, optimizer in run.ctx.optimizers.items():
                # the checkpoint brings Adam's moments; this invocation's arguments (--lr-g/--lr-d, betas) stay in
                # force, so a resumed run can lower its learning rate (torch would restore the saved ones)
                hyperparameters = [{k: v for k, v in group.items() if k != "params"} for group in optimizer.param_groups]
                optimizer.load_state_dict(ckpt.load_tree(path, f"optimizer_{name}"))
                for group, values in zip(optimizer.param_groups, hyperparameters):
                    group.update(values)
            self.method.load_state_dict(ckpt.load_tree(path, "method_state"))
            loop = ckpt.load_tree(path, "loop_state")
            scaler = loop.pop("scaler", None)
            run.state.load_tree(loop)
            if accelerator.scaler is not None and scaler:
                accelerator.scaler.load_state_dict(scaler)
        except FsgenError:
            raise
        except (KeyError, TypeError, ValueError, IndexError, AttributeError, RuntimeError) as exc:
            raise FsgenError(f"{path} does not fit this run ({type(exc).__name__}: {str(exc).splitlines()[0][:120]}): "
                             "resume with the arguments of that run or choose another --output-dir") from None

    def _check_replicas(self, accelerator, G) -> bool | None:
        if accelerator.num_processes == 1:
            return None
        digest = torch.tensor([int(_weights_digest(accelerator.unwrap_model(G))[:15], 16)], dtype=torch.float64,
                              device=accelerator.device)
        gathered = accelerator.gather(digest)
        identical = bool((gathered == gathered[0]).all())
        if not identical:
            raise FsgenError("the processes ended with different generator weights: please report this bug")
        return identical

    # ------------------------------------------------------------------ evaluation
    def _evaluate(self, run: Run, step: int) -> None:
        args, ctx, state = self.args, run.ctx, run.state
        if not args.eval_metrics or not ctx.accelerator.is_main_process:
            return
        from fsgen_hub.metrics import evaluate

        names = [m.strip() for m in args.eval_metrics.split(",") if m.strip()]
        reference = args.eval_reference if args.eval_reference else ctx.train_images
        # a reference set of the domain is held out: shots found in it (by content) are dropped
        exclude = ctx.train_images.cpu() if args.eval_reference else None
        results = evaluate(run.G_ema, reference, names, num_samples=args.eval_num_samples, shots=ctx.train_images,
                           seed=args.seed, device=ctx.accelerator.device, step=step,
                           output_jsonl=self.output_dir / METRICS_NAME, exclude_from_reference=exclude,
                           source=run.source_G,
                           model_name=self.output_dir.name)  # G_ema was copied from the source: not its name
        for result in results:
            ctx.accelerator.log({f"eval/{result.metric}": result.value}, step=step)
            if args.select_best and result.metric == args.select_best:
                if state.best is None or result.value < state.best["value"]:
                    state.best = {"metric": result.metric, "value": result.value, "step": step,
                                  "weights": {k: v.detach().cpu().clone() for k, v in run.G_ema.state_dict().items()}}

    def _no_longer_improving(self, state: RunState, step: int) -> bool:
        """--patience: the best --select-best value is ``patience`` evaluations old."""
        args, best = self.args, state.best
        return bool(args.patience and best is not None and step - best["step"] >= args.patience * args.eval_every)

    # ------------------------------------------------------------------ outputs
    def _finish(self, run: Run, *, wall_time_s: float, replicas_identical: bool | None) -> None:
        """The model folder: the best (or last) G_ema exported by the method, D, sample grids, lineage and card."""
        args, method, out, ctx = self.args, self.method, self.output_dir, run.ctx
        source_G, best, images = run.source_G, run.state.best, run.inputs.images
        if best is not None:
            run.G_ema.load_state_dict(best["weights"])
        final_G = method.export(ctx, run.G_ema).eval()
        device = ctx.accelerator.device
        fixed = source_G.make_latents(8, seed=args.seed)
        adapted = final_G.sample(16, z=source_G.make_latents(16, seed=args.seed), seed=args.seed, output_type="pt", device=device)
        save_image_grid(adapted, out / "samples.png")
        artifacts = {"samples": "samples.png", "shots": "shots.png"}
        save_image_grid((images[:16] + 1) / 2, out / "shots.png", nrow=min(len(images), 10))
        if not self.from_scratch:
            pair = torch.cat([source_G.sample(8, z=fixed, seed=args.seed, output_type="pt"),
                              final_G.sample(8, z=fixed, seed=args.seed, output_type="pt", device=device)])
            save_image_grid(pair, out / "source_vs_adapted.png", nrow=8)
            artifacts["source_vs_adapted"] = "source_vs_adapted.png"
        artifacts.update(method.write_artifacts(ctx, out) or {})
        inputs = run.inputs
        lineage = build_lineage(
            kind="trained" if self.from_scratch else "adapted", base=inputs.base, run_dir=out, data_id=inputs.data_id,
            shot_records=inputs.shot_records, args=args, steps_run=run.state.step, accelerator=ctx.accelerator,
            replicas_identical=replicas_identical, wall_time_s=wall_time_s, discriminator=inputs.discriminator_origin,
            artifacts=artifacts, method=None if self.from_scratch else method, best=best)
        final_D = ctx.accelerator.unwrap_model(run.D)
        final_G.save_pretrained(out, discriminator=final_D, lineage=lineage)  # with its card, rendered from the folder


def _trackers(report_to: str) -> str | None:
    """Accelerate's ``log_with`` for ``--report-to``, with a one-line error when the tracker is not installed."""
    import importlib.util

    if report_to == "none":
        return None
    needed = {"tensorboard": ["tensorboard"], "wandb": ["wandb"], "all": []}[report_to]
    for package in needed:
        if importlib.util.find_spec(package) is None:
            hint = "pip install wandb" if package == "wandb" else "pip install 'fsgen_hub[train]'"
            raise FsgenError(f"--report-to {report_to} needs the {package} package: {hint} (or --report-to none)")
    return report_to


@contextmanager
def _frozen_outside(module: torch.nn.Module | None, optimizer):
    """Parameters of ``module`` that ``optimizer`` does not train get no gradient while inside.

    The G phase backpropagates through D only to reach G: D's own weight gradients would be computed
    (about a third of D's backward) and then thrown away by the next D phase.
    """
    trained = {id(p) for group in optimizer.param_groups for p in group["params"]} if optimizer is not None else set()
    frozen = [p for p in module.parameters() if p.requires_grad and id(p) not in trained] if module is not None else []
    for p in frozen:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in frozen:
            p.requires_grad_(True)


def _ema_update(ema: torch.nn.Module, model: torch.nn.Module, beta: float) -> None:
    with torch.no_grad():
        for p_ema, p in zip(ema.parameters(), model.parameters()):
            p_ema.lerp_(p.detach(), 1 - beta)
        for b_ema, b in zip(ema.buffers(), model.buffers()):
            b_ema.copy_(b)


def _progress(iterable, enabled: bool, initial: int, total: int, desc: str):
    if not enabled:
        return iterable
    from tqdm.auto import tqdm

    # disable=None: no bar when stderr is not a terminal (logs, CI, scripts), where it would bury the
    # one-line error of a failed run under progress lines
    return tqdm(iterable, initial=initial, total=total, dynamic_ncols=True, desc=desc, disable=None)


def _flat_config(args: TrainingArguments) -> dict:
    flat = {}
    for key, value in args.to_dict().items():
        flat[key] = value if isinstance(value, (int, float, str, bool)) else json.dumps(value)
    return flat


def _zoo_license(model_id: str) -> str | None:
    from fsgen_hub.zoo import ZOO

    return ZOO[model_id].license if model_id in ZOO else None


def _zoo_terms(model_id: str) -> str | None:
    from fsgen_hub.zoo import ZOO

    return ZOO[model_id].data_terms or None if model_id in ZOO else None


def _first_missing_ancestor(path: Path) -> Path | None:
    """The outermost folder of ``path`` that does not exist yet (what a failed run must remove), or None."""
    missing = None
    for candidate in (path, *path.parents):
        if candidate.exists():
            break
        missing = candidate
    return missing


def default_output_dir(args: TrainingArguments) -> str:
    """runs/<method>-<target>, or the first free runs/<method>-<target>-N so a repeated run never collides;
    with --resume, the newest existing one."""
    target = Path(str(args.data)).name if args.data else "emoji"
    name = args.architecture and f"train-{args.architecture}" or (args.method or DEFAULT_METHOD)
    base = Path("runs") / f"{name}-{target}"
    newest, index = None, 1
    while (candidate := base if index == 1 else base.with_name(f"{base.name}-{index}")).exists():
        newest, index = candidate, index + 1
    return str(newest or base) if args.resume else str(candidate)
