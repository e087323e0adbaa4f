"""litefuse: small, fast, measurably good infrared-visible image fusion.

>>> import litefuse
>>> litefuse.list_models()                      # every registered method
>>> fused = litefuse.fuse("ir.png", "vi.png")   # float32 in [0, 1], colour if vi is colour
>>> litefuse.save_image("fused.png", fused)
>>> litefuse.benchmark(["aenetv2-ivif"]).markdown()  # params, MACs and speed on this machine
"""

from ._interrupt import quiet_interrupt as _quiet_interrupt

with _quiet_interrupt():  # Ctrl-C while the command imports torch: one line, not a traceback
    from . import models  # noqa: F401  registers every method (the registry itself imports none)
    from .api import Fuser, fuse
    from .folder import fuse_folder
    from .bench import benchmark
    from .export import export_onnx
    from .io import read_image, save_image
    from .registry import list_models, load_model
    from .video import fuse_video

__version__ = "0.1.0"
__all__ = ["Fuser", "fuse", "fuse_folder", "read_image", "save_image", "list_models", "load_model", "fuse_video", "export_onnx", "benchmark", "__version__"]

# last, so that a plugin may import anything above: modules of $LITEFUSE_PLUGINS and of the
# "litefuse.plugins" entry points, which register their own methods and metrics
from .plugins import load_plugins as _load_plugins  # noqa: E402

with _quiet_interrupt():
    _load_plugins(strict=False)  # a failure is said by the CLI and by unknown-name errors (litefuse.plugins)
