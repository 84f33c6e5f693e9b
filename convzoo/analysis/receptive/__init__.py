"""Receptive fields, exact for every unit: one integer interval of input pixels per unit and
spatial axis (per channel where channels differ), propagated op by op through the traced
graph.

Layers, one direction of imports: :mod:`.span` (one axis: a ``Span`` of per-unit
intervals, built on first use, and its summary) <- :mod:`.intervals` (the interval algebra) <-
:mod:`.channels` (which spans each channel has, when channels differ) <- :mod:`.field` (the
``Field`` of a tensor: axes, places, channels, summary) <- :mod:`.merging` (unions of
fields) <- :mod:`.table` (the ``Call`` rules see and the ``@rule`` decorator, which
registers a rule as the field aspect of the op table, :mod:`convzoo.analysis.ops`) <- the
op rules :mod:`.layout`, :mod:`.joins`, :mod:`.spatial`, :mod:`.resample`, :mod:`.mixing`,
:mod:`.writes` (imported by :mod:`convzoo.analysis.ops.builtin` with the cost rules) <-
:mod:`.dispatch` (what the tracer calls per op; it reads the rules from the op table, and
gives rules that do not handle channels the union over them); :mod:`.modules` holds the
rules for zoo modules whose ops do not show their geometry.
"""

from convzoo.analysis.receptive.dispatch import (
    keeps_global_field,
    moves_axes,
    passes_through,
    propagate,
    propagate_outputs,
)
from convzoo.analysis.receptive.field import Field, FieldSummary, Place
from convzoo.analysis.receptive.merging import merge_fields
from convzoo.analysis.receptive.modules import MODULE_RULES, module_field
from convzoo.analysis.receptive.span import Span, Summary, summary
from convzoo.analysis.receptive.spatial import DEFORMABLE_NOTE
from convzoo.analysis.receptive.writes import into_view

__all__ = [
    "DEFORMABLE_NOTE",
    "MODULE_RULES",
    "Field",
    "FieldSummary",
    "Place",
    "Span",
    "Summary",
    "into_view",
    "keeps_global_field",
    "merge_fields",
    "moves_axes",
    "module_field",
    "passes_through",
    "propagate",
    "propagate_outputs",
    "summary",
]
