"""Hugging Face Space entry point: the fsgen_hub demo on the models listed in FSGEN_MODELS.

FSGEN_ALLOW_CUSTOM=1 also lets visitors type public hub ids (fetched without the Space's token).
"""
import os

from fsgen_hub.demo import build_app

# Comma-separated hub ids / zoo ids shown in the picker: the models this Space serves.
MODELS = [m.strip() for m in os.environ.get("FSGEN_MODELS", "").split(",") if m.strip()]
ALLOW_CUSTOM = os.environ.get("FSGEN_ALLOW_CUSTOM", "").strip().lower() in ("1", "true", "yes")

demo = build_app(MODELS, allow_custom=ALLOW_CUSTOM)

if __name__ == "__main__":
    demo.launch()
