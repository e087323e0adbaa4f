"""Per-model training objectives, one module per model family.

Each module registers its :class:`~litefuse.train.core.Objective` subclasses with
:func:`~litefuse.train.core.register_objective`; :func:`~litefuse.train.core.get_objective`
imports them lazily, so nothing here is imported up front.
"""

#: model name -> the module here that registers its objective (others are found by importing all)
MODULES = {
    "densefuse": "autoencoder",
    "lwc-densefuse": "autoencoder",
    "aenetv2": "aenetv2",
    "aenetv2-ivif": "distill",
    "distill": "distill",
    "dwsfusion": "dwsfusion",
    "dwsfusion-plus": "dwsfusion",
}
