"""Adaptation methods: one file per method, each ending with its ``register_method`` call.

Importing the package imports every method file so that the registry (``fsgen_hub.methods.base``) is full;
a new method is a new file here plus one line below.
"""
from fsgen_hub.methods import (  # noqa: F401 (registration)
    adafm,
    bsa,
    cdc,
    d3t,
    dap,
    ewc,
    finetune,
    freezed,
    rick,
)
from fsgen_hub.methods.base import get_method, list_methods, register_method

__all__ = ["get_method", "list_methods", "register_method"]
