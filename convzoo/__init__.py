"""convzoo: every convolution variant as a tested ``nn.Module``, and what each one costs."""

from convzoo import blocks as _blocks  # noqa: F401  (registers the blocks)
from convzoo import layers as _layers  # noqa: F401  (registers the zoo)
from convzoo.analysis.analyzer import AnalysisError, analyze
from convzoo.analysis.ops import OpCall, register_op
from convzoo.analysis.report import LayerStats, Report
from convzoo.builder import Model, build
from convzoo.config import ConfigError, load_config
from convzoo.errors import ConvZooError, LayerArgumentError
from convzoo.registry import LAYERS, Registry, create, list_layers, register

__version__ = "0.1.0"

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
