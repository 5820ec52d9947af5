"""Adaptation methods: a config dataclass + a class with hooks + one ``register_method`` call.

The trainer (``fsgen_hub.training.trainer``) knows no method by name. It calls these hooks, in
this order, and nothing else:

    method = MethodClass(config)
    args.fill_defaults(method.training_defaults(G))       # the method's recipe fills unset settings
    # parameters outside --g-groups/--d-groups (G.parameter_groups(): mapping, const, conv1, synthesis,
    # torgb; D: from_rgb, blocks, final) stop requiring gradients
    method.prepare(ctx)                                   # once, before optimizers/accelerator.prepare
    g_params = method.generator_parameters(ctx)           # what the G optimizer updates
    d_params = method.discriminator_parameters(ctx)       # what the D optimizer updates (if uses_discriminator)
    for step in range(start, steps):
        # steps < --warmup-steps: only the D phase runs, and only D's --warmup-d-groups move
        # discriminator phase (skipped when method.uses_discriminator is False)
        z = method.sample_latents(ctx, batch_size)
        fake = ctx.G(z).detach()
        real_out, fake_out = method.discriminate(ctx, real), method.discriminate(ctx, fake)
        loss_D = softplus(fake) + softplus(-real) + sum(method.discriminator_loss(ctx, batch).values()) [+ lazy R1]
        backward; method.after_backward(ctx, "D"); opt_D.step(); method.after_optimizer_step(ctx, "D")
        # generator phase
        z = method.sample_latents(ctx, batch_size)
        fake, g_feats = ctx.G(z, return_features=True)
        fake_out = method.discriminate(ctx, fake)
        loss_G = adversarial_weight * softplus(-fake) + sum(method.generator_loss(ctx, batch).values())
        backward; method.after_backward(ctx, "G"); opt_G.step(); method.after_optimizer_step(ctx, "G")
        every --pl-every steps (StyleGAN2, --pl-weight > 0): the path-length step, phase "G_reg", same hooks
        EMA update of ctx.G_ema from ctx.G
        method.on_step_end(ctx, step)                     # schedules: re-estimate Fisher, re-decide masks ...
    G_final = method.export(ctx, ctx.G_ema)               # bake masks/modulations into a plain generator

Every loss dict entry is logged under its key. ``method.state_dict()``/``load_state_dict()`` carry the
method's own state (masks, Fisher running sums, step counters) through checkpoint/resume.
Three kinds of method fit: parameter-changing (AdaFM, BSA, pruning masks), loss-adding with a
frozen source copy (EWC, CDC, D3T) and schedule-driven (RICK, DAP).
"""
from __future__ import annotations

import copy
import dataclasses
import difflib
from abc import ABC
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn

from fsgen_hub.utils.errors import FsgenError


@dataclass
class MethodConfig:
    """Base of method configs. Fields carry ``metadata={"help": ...}``; values must be JSON-able."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None):
        data = dict(data or {})
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise FsgenError(
                f"unknown option(s) {', '.join(unknown)} for {cls.__name__}; valid: {', '.join(sorted(names)) or 'none'}"
            )
        return cls(**data)

    @classmethod
    def help(cls) -> dict[str, str]:
        return {f.name: f.metadata.get("help", "") for f in dataclasses.fields(cls)}


@dataclass
class StepBatch:
    """What a G or D phase computed, handed to loss hooks (fields are None when not computed)."""

    phase: str                                   # "G" or "D"
    step: int
    real: torch.Tensor | None = None             # augmented real images (D phase)
    real_raw: torch.Tensor | None = None         # real images before augmentation
    real_indices: torch.Tensor | None = None     # indices of the real images in ctx.train_images
    z: torch.Tensor | None = None                # latents used for the fake batch
    fake: torch.Tensor | None = None             # generated images (before augmentation)
    fake_features: dict[str, torch.Tensor] | None = None  # ctx.G's named features for `z` (G phase)
    real_logits: torch.Tensor | None = None
    fake_logits: torch.Tensor | None = None
    real_d_features: dict[str, torch.Tensor] | None = None
    fake_d_features: dict[str, torch.Tensor] | None = None


def average_gradients(params: Iterable[torch.Tensor], world: int) -> None:
    """All-reduce and average the gradients of ``params`` over ``world`` processes (nothing to do for one)."""
    if world > 1:
        for p in params:
            if p.grad is not None:
                torch.distributed.all_reduce(p.grad)
                p.grad /= world


@dataclass
class AdaptContext:
    """Everything a method may touch. ``G``/``D`` are the trained models (wrapped by Accelerate
    after ``prepare``: use ``ctx.unwrap(ctx.G)`` to reach attributes); ``G_ema`` is not wrapped."""

    G: nn.Module
    D: nn.Module | None
    G_ema: nn.Module
    accelerator: Any                            # accelerate.Accelerator
    args: Any                                   # fsgen_hub.training.arguments.TrainingArguments
    train_images: torch.Tensor                  # (N, 3, H, W) in [-1, 1], on ctx.device
    augment: Callable[[torch.Tensor], torch.Tensor] = lambda x: x
    step: int = 0
    log: Callable[[dict[str, float]], None] = lambda values: None
    output_dir: Any = None                      # pathlib.Path of the run
    optimizers: dict[str, Any] = field(default_factory=dict)  # {"G": opt, "D": opt} once built
    discriminator_origin: str = "source"        # "fresh" when the source shipped no discriminator
    ema_beta: float = 0.999                     # per-step EMA decay of G_ema (methods keeping EMA copies reuse it)
    _frozen: dict[str, nn.Module] = field(default_factory=dict)

    @property
    def device(self) -> torch.device:
        return self.accelerator.device

    def unwrap(self, model: nn.Module) -> nn.Module:
        return self.accelerator.unwrap_model(model)

    def sync_gradients(self, params: Iterable[torch.Tensor]) -> None:
        """Average the gradients of ``params`` over the processes, as DDP does for ctx.G and ctx.D: methods call
        it in ``after_backward`` for what they train outside those models (BSA's latents, CDC's heads)."""
        average_gradients(params, self.accelerator.num_processes)

    def frozen_copy(self, name: str, model: nn.Module) -> nn.Module:
        """A frozen, eval-mode deep copy of ``model`` (e.g. the source G or D), made once per name."""
        if name not in self._frozen:
            frozen = copy.deepcopy(self.unwrap(model)).eval()
            frozen.requires_grad_(False)
            self._frozen[name] = frozen.to(self.device)
        return self._frozen[name]


class AdaptationMethod(ABC):
    """Base class: the defaults implement plain fine-tuning (TransferGAN)."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    paper: ClassVar[str] = ""                    # "Authors, Venue Year, arXiv/URL"
    config_class: ClassVar[type[MethodConfig]] = MethodConfig
    uses_discriminator: ClassVar[bool] = True    # False: no D phase (e.g. BSA's reconstruction objective)
    adversarial_weight: float = 1.0              # weight of the non-saturating G loss

    def __init__(self, config: MethodConfig | None = None):
        self.config = config if config is not None else self.config_class()

    # --- set-up -----------------------------------------------------------------------
    def training_defaults(self, G: nn.Module) -> dict[str, Any]:
        """The method's training recipe for generator ``G``: values for TrainingArguments settings
        (batch_size, r1_gamma, pl_weight, style_mixing, warmup_steps, g_groups, d_groups, ema_half_life,
        augment, lazy_regularization, lr_g ...) that apply only where the user set nothing. Default:
        the method's entry in ``fsgen_hub.methods.recipes`` (from its official code)."""
        from fsgen_hub.methods.recipes import recipe_for

        return recipe_for(self.name, G)

    def prepare(self, ctx: AdaptContext) -> None:
        """Modify ctx.G / ctx.D in place (wrap layers, add parameters, freeze) and build frozen copies."""

    def generator_parameters(self, ctx: AdaptContext) -> Iterable[nn.Parameter]:
        return [p for p in ctx.G.parameters() if p.requires_grad]

    def discriminator_parameters(self, ctx: AdaptContext) -> Iterable[nn.Parameter]:
        return [p for p in ctx.D.parameters() if p.requires_grad] if ctx.D is not None else []

    # --- per step ---------------------------------------------------------------------
    def sample_latents(self, ctx: AdaptContext, batch_size: int) -> torch.Tensor:
        return torch.randn(batch_size, ctx.unwrap(ctx.G).z_dim, device=ctx.device)

    def allow_style_mixing(self, ctx: AdaptContext, step: int) -> bool:
        """Whether this step's training fakes may be style-mixed (--style-mixing); CDC's anchor steps not."""
        return True

    def discriminate(self, ctx: AdaptContext, images: torch.Tensor, *, real: bool, step: int) -> tuple[torch.Tensor, dict]:
        """Logits (N, 1) and named D features for a batch (already augmented)."""
        return ctx.D(images, return_features=True)

    def generator_loss(self, ctx: AdaptContext, batch: StepBatch) -> dict[str, torch.Tensor]:
        """Extra generator loss terms (added to the adversarial loss), by name."""
        return {}

    def discriminator_loss(self, ctx: AdaptContext, batch: StepBatch) -> dict[str, torch.Tensor]:
        """Extra discriminator loss terms (added to the logistic loss), by name."""
        return {}

    def after_backward(self, ctx: AdaptContext, phase: str) -> None:
        """Gradients are ready (e.g. accumulate Fisher information, mask gradients)."""

    def after_optimizer_step(self, ctx: AdaptContext, phase: str) -> None:
        """Parameters were updated (e.g. re-apply masks so pruned filters stay exactly zero)."""

    def on_step_end(self, ctx: AdaptContext, step: int) -> None:
        """Schedules: re-estimate importance, re-decide masks, log method statistics."""

    # --- persistence and export -------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass

    def export(self, ctx: AdaptContext, generator: nn.Module) -> nn.Module:
        """A plain generator of the same class with the method's effect baked in (default: as is)."""
        return generator

    def write_artifacts(self, ctx: AdaptContext, output_dir) -> dict[str, str]:
        """Write method-specific files (plots, JSON) into the final model folder; return {label: filename}."""
        return {}


# The method registry is a leaf: each method file calls register_method at its bottom, and
# fsgen_hub/methods/__init__.py imports every method file (so importing this module fills it).
_REGISTRY: dict[str, tuple[type[MethodConfig], type[AdaptationMethod]]] = {}


def register_method(name: str, config_class: type[MethodConfig], method_class: type[AdaptationMethod]) -> None:
    """Make ``method_class`` (configured by ``config_class``) available as ``--method name``; a name is taken once."""
    if name in _REGISTRY and _REGISTRY[name][1] is not method_class:
        raise FsgenError(f"a method named {name!r} is already registered ({_REGISTRY[name][1].__name__}): "
                         f"register {method_class.__name__} under another name")
    method_class.name = name
    method_class.config_class = config_class
    _REGISTRY[name] = (config_class, method_class)


def list_methods() -> dict[str, type[AdaptationMethod]]:
    return {name: cls for name, (_, cls) in sorted(_REGISTRY.items())}


def get_method(name: str, options: dict[str, Any] | None = None) -> AdaptationMethod:
    """Instantiate a registered method with its config built from ``options``."""
    if name not in _REGISTRY:
        close = difflib.get_close_matches(name, list(_REGISTRY), n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise FsgenError(f"unknown method {name!r}; registered: {', '.join(sorted(_REGISTRY))}.{hint}")
    config_class, method_class = _REGISTRY[name]
    return method_class(config_class.from_dict(options))
