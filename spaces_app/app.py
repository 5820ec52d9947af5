"""Hugging Face Space entry point: the fsgen_hub demo on the models listed in FSGEN_MODELS."""
import os

from fsgen_hub.demo import build_app

# Comma-separated hub ids / zoo ids shown in the picker; any other id can be typed in the app.
MODELS = [m.strip() for m in os.environ.get("FSGEN_MODELS", "").split(",") if m.strip()]

demo = build_app(MODELS)

if __name__ == "__main__":
    demo.launch()
