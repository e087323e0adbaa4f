"""Plugins: modules outside the package that register methods, metrics or objectives.

A network, classical fuser, metric or training objective registered from your own module
(:func:`litefuse.registry.register_model`, :func:`litefuse.metrics.register_metric`,
:func:`litefuse.train.register_objective`) exists in a process once that module is imported.
A script can import it itself; the ``litefuse`` command and the worker processes that ``eval``
and ``compare`` spawn (``-j``) cannot, so ``import litefuse`` imports, after the built-in
methods, every plugin module named

* in ``$LITEFUSE_PLUGINS``: module names separated by commas (``mypkg.fusers,my_metric``),
  importable from ``sys.path`` (e.g. through ``PYTHONPATH``);
* by an installed distribution's entry points of group ``litefuse.plugins``
  (``[project.entry-points."litefuse.plugins"] mynet = "mypkg.mynet"``).

A plugin that fails to import fails ``import litefuse`` with its own traceback, noted with
the plugin's name and where it was named, so that a broken plugin is never silently missing.
"""

from __future__ import annotations

import os
from importlib import import_module

__all__ = ["ENV", "GROUP", "load_plugins", "plugin_names"]

ENV = "LITEFUSE_PLUGINS"
GROUP = "litefuse.plugins"

_LOADED: set[str] = set()


def plugin_names() -> list[tuple[str, str]]:
    """``(module, where it was named)`` for every plugin of ``$LITEFUSE_PLUGINS`` and the entry points."""
    names = [(n.strip(), f"${ENV}") for n in os.environ.get(ENV, "").split(",") if n.strip()]
    try:
        from importlib.metadata import entry_points

        names += [(ep.value.split(":")[0].strip(), f"entry point {ep.name!r} of group {GROUP!r}")
                  for ep in entry_points(group=GROUP)]
    except Exception:  # broken distribution metadata: the environment variable still works
        pass
    return names


def load_plugins() -> list[str]:
    """Import every plugin module not imported yet (:func:`plugin_names`); returns those imported now."""
    done = []
    for module, where in plugin_names():
        if module in _LOADED:
            continue
        try:
            import_module(module)
        except BaseException as exc:
            exc.add_note(f"while importing the litefuse plugin {module!r} (named by {where})")
            raise
        _LOADED.add(module)
        done.append(module)
    return done
