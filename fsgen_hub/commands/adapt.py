"""``fsgen adapt``: adapt a source generator to a few target images (defaults: the offline demo run)."""
from __future__ import annotations

import argparse

EXCLUDE = ("architecture", "resolution", "model_config")


def register(subparsers) -> argparse.ArgumentParser:
    from fsgen_hub.training.arguments import add_arguments, add_config_argument

    parser = subparsers.add_parser(
        "adapt", help="adapt a pretrained GAN to a few images (no arguments: the offline demo run)",
        description="Adapt a source GAN to a few target images. With no arguments: the zoo's 64 px StyleGAN2 "
        "fsgen/stylegan2-faces64 (with its discriminator; UTKFace non-commercial terms carry over) fine-tuned on the 10 "
        "embedded emoji faces (300 steps, batch 8, DiffAugment), on CPU, in about ten minutes.",
    )
    add_arguments(parser, exclude=EXCLUDE)
    add_config_argument(parser)
    parser.add_argument("--method-option", dest="method_options", action="append", metavar="K=V|JSON",
                        help="method option (repeatable); same as --method-options")
    parser.set_defaults(func=run)
    return parser


def run(args) -> int:
    from fsgen_hub.training.arguments import from_namespace
    from fsgen_hub.training.trainer import AdaptationTrainer

    trainer = AdaptationTrainer(from_namespace(args))
    out = trainer.train(push=False)
    report(out)
    publish(trainer)
    return 0


def publish(trainer) -> None:
    """--push-to-hub, after the summary: a failed push (no token, offline) leaves a finished, reported model folder."""
    if trainer.args.push_to_hub:
        trainer.push_to_hub()


def report(out) -> None:
    from fsgen_hub.folder import read_model_folder

    latest = read_model_folder(out).latest_metrics()
    print(f"\nmodel folder: {out}")
    for name, record in sorted(latest.items()):
        print(f"  {name}: {record['value']:.4g}  ({record['protocol'].get('num_samples')} samples)")
    print(f"load it: python -c \"from fsgen_hub import AutoGenerator; "
          f"AutoGenerator.from_pretrained('{out}').sample(8, seed=0)[0].save('sample.png')\"")
