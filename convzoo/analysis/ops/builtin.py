"""convzoo's own rules: the one module that imports every rule module to fill the op
table, cost rules and receptive-field rules alike. :meth:`OpTable.load` imports it on the
table's first lookup; nothing else needs to."""

from __future__ import annotations

from convzoo.analysis.ops import elementwise, free, linear, quantized, vision
from convzoo.analysis.receptive import joins, layout, mixing, resample, spatial, writes

MODULES = (
    linear, elementwise, free, quantized, vision,
    layout, joins, spatial, resample, mixing, writes,
)  # fmt: skip
"""The rule modules, costs first (each registers its rules on import)."""
