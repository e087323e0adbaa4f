"""litefuse: small, fast, measurably good infrared-visible image fusion."""

from .registry import list_models, load_model

__version__ = "0.1.0"
__all__ = ["list_models", "load_model", "__version__"]
