"""Fusion methods. Importing this package registers every model with :mod:`litefuse.registry`."""

from importlib import import_module

# one module per method; a module that is missing (work in progress) must not break the rest
for _name in ("classical", "densefuse", "lwc_densefuse", "aenetv2", "dwsfusion"):
    try:
        import_module(f"{__name__}.{_name}")
    except ModuleNotFoundError as exc:  # pragma: no cover
        if exc.name != f"{__name__}.{_name}":
            raise
