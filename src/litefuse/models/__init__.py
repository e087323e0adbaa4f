"""Fusion methods. Importing this package registers every method with :mod:`litefuse.registry`.

Each method's module registers what defines it next to its code: factory, description, shipped
weights file, tasks, paper. The table below adds, once per method, what the rest of the package
needs to know about it (:class:`~litefuse.registry.ModelInfo`):

- ``objective``: the training objective, ``litefuse/train/objectives/<objective>.py``;
- ``config``: the packaged training config under ``litefuse/configs`` (what ``litefuse train``
  starts from);
- ``default_rank``: the order of preference for the default method (0 first), among the methods
  that ship weights and cover the task (a mapping: per task, for the tasks it names);
- ``checkpoint_filter``: maps another checkpoint layout (DWSFusion's public release) onto the
  model's own keys whenever weights are loaded.
"""

from ..registry import add_model_facts as _add_model_facts
from . import aenetv2, classical, densefuse, dwsfusion, lwc_densefuse  # noqa: F401  (registers each method)

# the method modules; build a method by name with litefuse.load_model, count its cost with
# litefuse.models.complexity (imported on demand)
__all__ = ["aenetv2", "classical", "densefuse", "dwsfusion", "lwc_densefuse"]

_add_model_facts("aenetv2-ivif", objective="distill", config="aenetv2-ivif.toml", default_rank=0)
_add_model_facts("aenetv2", objective="aenetv2", config="aenetv2.toml", default_rank=1)
_add_model_facts("lwc-densefuse", objective="autoencoder", config="lwc-densefuse.toml", default_rank=2)
_add_model_facts("dwsfusion-plus", objective="dwsfusion", config="dwsfusion-plus.toml", default_rank=3,
                checkpoint_filter=dwsfusion.DWSFusion.remap_state_dict)
_add_model_facts("dwsfusion", objective="dwsfusion", config="dwsfusion.toml", default_rank=4,
                checkpoint_filter=dwsfusion.DWSFusion.remap_state_dict)
_add_model_facts("densefuse", objective="autoencoder", config="densefuse.toml", default_rank=5)
_add_model_facts("gff", default_rank=6)  # classical: always available, for every task
# Named multi-focus and multi-exposure pairs: the Laplacian pyramid is ahead of the general aenetv2 on
# 7 of the 8 core metrics of each task's validation pairs, draws no halo around dark objects in
# over-exposed scenes, and runs in half its time (docs/models.md, "The default method per task"). Medical pairs
# and A/B pairs of unstated task keep aenetv2 (the pyramid loses 6 of 8 to it on MRI_CT).
_add_model_facts("laplacian", default_rank={"mff": 0, "mef": 0})
