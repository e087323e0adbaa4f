"""Training: one trainer core (:mod:`.core`), shared losses (:mod:`.losses`) and per-model
objectives (:mod:`.objectives`, imported on demand by :func:`get_objective`)."""

from .core import (
    ConfigError,
    EarlyStopping,
    LossLog,
    Objective,
    TrainConfig,
    Trainer,
    TrainResult,
    default_config_path,
    get_objective,
    list_objectives,
    make_optimizer,
    register_objective,
)
from .losses import gradient_l1, ms_ssim, sobel_gradient, ssim

__all__ = [
    "ConfigError",
    "EarlyStopping",
    "LossLog",
    "Objective",
    "TrainConfig",
    "Trainer",
    "TrainResult",
    "default_config_path",
    "get_objective",
    "list_objectives",
    "make_optimizer",
    "register_objective",
    "gradient_l1",
    "ms_ssim",
    "sobel_gradient",
    "ssim",
]
