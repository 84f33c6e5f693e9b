"""The op table: what each op costs and how it moves a receptive field, as data.

Every op the tracer sees is costed (``macs`` or ``elementwise``), declared ``free`` with a
reason (views without an entry), or reported *uncounted*, and the report is then not
``complete``. :mod:`.table` holds the registry (:data:`TABLE`, :func:`register_op`),
:mod:`.call` the :class:`OpCall` cost rules read arguments from by schema name, and
:mod:`.query` what the tracer asks per call. The built-in rules live in :mod:`.linear`,
:mod:`.elementwise`, :mod:`.free`, :mod:`.quantized`, :mod:`.vision` and the receptive
rule modules, all imported by :mod:`.builtin`.
"""

from convzoo.analysis.ops.call import OpCall, argument, first
from convzoo.analysis.ops.query import FUSED_RULES, charge, classify, fused
from convzoo.analysis.ops.table import (
    TABLE,
    OpEntry,
    OpTable,
    Resolved,
    is_view,
    op_key,
    register_op,
)

__all__ = [
    "FUSED_RULES",
    "TABLE",
    "OpCall",
    "OpEntry",
    "OpTable",
    "Resolved",
    "argument",
    "charge",
    "classify",
    "first",
    "fused",
    "is_view",
    "op_key",
    "register_op",
]
