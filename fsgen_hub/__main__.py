"""``python -m fsgen_hub`` is the ``fsgen`` command (also under ``accelerate launch -m fsgen_hub``)."""
from fsgen_hub.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
