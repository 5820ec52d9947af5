"""Generators and discriminators. Importing the package imports every architecture file, so each registers
its classes (``register_model``) before anything looks a ``config.json`` architecture up."""
from fsgen_hub.models import dcgan, stylegan2  # noqa: F401 (registration)
