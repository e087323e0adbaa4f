"""Per-model training objectives, one module per model family.

Each module registers its :class:`~litefuse.train.core.Objective` subclasses with
:func:`~litefuse.train.core.register_objective`; :func:`~litefuse.train.core.get_objective`
imports them lazily, so nothing here is imported up front.
"""
