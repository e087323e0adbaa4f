"""Training: configuration (:mod:`.config`), the per-model part (:mod:`.objective`, with the
objectives themselves in :mod:`.objectives`, imported on demand by :func:`get_objective`), the
run's state and checkpoints (:mod:`.state`), the shared loop (:mod:`.trainer`) and losses
(:mod:`.losses`)."""

from .config import ConfigError, TrainConfig, default_config_path
from .losses import gradient_l1, ms_ssim, sobel_gradient, ssim
from .objective import Objective, get_objective, list_objectives, make_optimizer, register_objective
from .state import EarlyStopping, LossLog, TrainState, atomic_torch_save
from .trainer import Trainer, TrainResult

__all__ = [
    "ConfigError",
    "EarlyStopping",
    "LossLog",
    "Objective",
    "TrainConfig",
    "TrainState",
    "Trainer",
    "TrainResult",
    "atomic_torch_save",
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
