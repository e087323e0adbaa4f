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

A plugin that fails to import is never silently missing: ``import litefuse`` goes on (so the
``litefuse`` command can say it in one line, exit 2, before running anything: :func:`check_plugins`),
and asking for a method or metric that is not registered names the failed plugin too.
:func:`load_plugins` called directly raises :class:`PluginError` (its cause: the plugin's own
exception and traceback).
"""

from __future__ import annotations

import os
from importlib import import_module

from .errors import LitefuseError

__all__ = ["ENV", "GROUP", "PluginError", "check_plugins", "failure_note", "load_plugins", "plugin_names"]

ENV = "LITEFUSE_PLUGINS"
GROUP = "litefuse.plugins"

_LOADED: set[str] = set()
_FAILED: dict[str, PluginError] = {}


class PluginError(LitefuseError):
    """A plugin module that could not be imported (the cause is its own exception)."""


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


def load_plugins(strict: bool = True) -> list[str]:
    """Import every plugin module not imported yet (:func:`plugin_names`); returns those imported
    now. A failure raises :class:`PluginError`, or with ``strict=False`` (``import litefuse``) is
    kept for :func:`check_plugins` and :func:`failure_note`."""
    done = []
    for module, where in plugin_names():
        if module in _LOADED or (module in _FAILED and not strict):
            continue
        try:
            import_module(module)
        except Exception as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            error = PluginError(f"litefuse plugin {module!r} (named by {where}) failed to import: "
                                f"{type(exc).__name__}{': ' + first if first else ''}")
            error.__cause__ = exc
            _FAILED[module] = error
            if strict:
                raise error from exc
            continue
        _FAILED.pop(module, None)
        _LOADED.add(module)
        done.append(module)
    return done


def check_plugins() -> None:
    """Raise the first :class:`PluginError` that ``import litefuse`` kept, if any."""
    if _FAILED:
        raise next(iter(_FAILED.values()))


def failure_note() -> str:
    """``"; <the plugin failures>"`` for an unknown-name error (a method or metric its plugin
    would have registered), or ``""``."""
    return "".join(f"; {error}" for error in _FAILED.values())
