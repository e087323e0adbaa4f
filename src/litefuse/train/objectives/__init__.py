"""Per-model training objectives, one module per objective.

Module ``<name>.py`` registers objective ``<name>`` with
:func:`~litefuse.train.objective.register_objective`; a model names its objective in the registry
(:attr:`~litefuse.registry.ModelInfo.objective`) and
:func:`~litefuse.train.objective.get_objective` imports the module on first use, so nothing
here is imported up front.
"""
