"""convzoo: every convolution variant as a tested ``nn.Module``, and what each one costs.

The public names are imported on first use (PEP 562), so ``import convzoo`` and the
``convzoo`` command's ``--help`` and ``list`` do not pay for importing torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover - what the lazy names below resolve to
    from convzoo.analysis.analyzer import AnalysisError, analyze
    from convzoo.analysis.ops import OpCall, register_op
    from convzoo.analysis.report import LayerStats, Report
    from convzoo.builder import Model, build
    from convzoo.config import ConfigError, load_config
    from convzoo.errors import ConvZooError, LayerArgumentError
    from convzoo.initcheck.check import init_check
    from convzoo.initcheck.report import InitReport
    from convzoo.registry import LAYERS, Registry, create, list_layers, register

__version__ = "0.1.0"

_HOMES = {
    "convzoo.analysis.analyzer": ("AnalysisError", "analyze"),
    "convzoo.analysis.ops": ("OpCall", "register_op"),
    "convzoo.analysis.report": ("LayerStats", "Report"),
    "convzoo.builder": ("Model", "build"),
    "convzoo.config": ("ConfigError", "load_config"),
    "convzoo.errors": ("ConvZooError", "LayerArgumentError"),
    "convzoo.initcheck.check": ("init_check",),
    "convzoo.initcheck.report": ("InitReport",),
    "convzoo.registry": ("LAYERS", "Registry", "create", "list_layers", "register"),
}
_HOME = {name: module for module, names in _HOMES.items() for name in names}
"""The module that defines each public name."""

__all__ = [
    "LAYERS",
    "AnalysisError",
    "LayerStats",
    "OpCall",
    "Report",
    "analyze",
    "ConfigError",
    "ConvZooError",
    "LayerArgumentError",
    "InitReport",
    "init_check",
    "Model",
    "Registry",
    "build",
    "create",
    "list_layers",
    "load_config",
    "register",
    "register_op",
    "__version__",
]


def __getattr__(name: str) -> Any:
    """A public name, imported from its module on first use (then cached here)."""
    if name not in _HOME:
        raise AttributeError(f"module 'convzoo' has no attribute {name!r}")
    value = getattr(importlib.import_module(_HOME[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    """``dir(convzoo)``: the public API (:data:`__all__`), not the helpers of this module."""
    return sorted(__all__)
