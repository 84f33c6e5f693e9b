"""Dispatch modes that stay out of ``torch._dynamo``: the base of convzoo's modes, and
:class:`ShapeRules`, a meta forward answered by the analyzer's fast shape rules.

torch wraps the ``__torch_dispatch__`` of every ``TorchDispatchMode`` subclass in
``torch._disable_dynamo``, whose first call imports ``torch._dynamo`` (0.7 s, and sympy).
convzoo never compiles, so its modes opt out (:meth:`PlainMode._should_skip_dynamo`, the
switch torch documents for it); the command then starts in about the time of
``import torch``. (Made inside a traced forward, that import also left reference cycles
that held the forward's activations, so the first analysis in a process found a higher
peak than the next ones: ``tests/test_memory.py`` checks that it no longer can.)

Batch norm's meta kernel is a Python decomposition that imports
``torch._dynamo`` as well: :class:`ShapeRules` answers it (and the other ops
:data:`~convzoo.analysis.meta_kernels.RULES` knows) before that kernel runs.
"""

from __future__ import annotations

from typing import Any

from torch.utils._python_dispatch import TorchDispatchMode

from convzoo.analysis.setup_rules import RULES


class PlainMode(TorchDispatchMode):
    """A ``TorchDispatchMode`` whose ``__torch_dispatch__`` torch leaves as written."""

    @classmethod
    def _should_skip_dynamo(cls) -> bool:
        """False: no ``torch._disable_dynamo`` wrapper (nothing here is compiled)."""
        return False


class ShapeRules(PlainMode):
    """Each op on meta tensors by its fast shape rule where one answers (the rules answer
    only what the real meta kernel gives: ``tests/test_meta_kernels.py``), else by its own
    kernel, which then raises its own error on bad arguments."""

    def __torch_dispatch__(
        self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None
    ) -> Any:
        kwargs = kwargs or {}
        rule = RULES.get(func)
        out = None if rule is None else rule(args, kwargs)
        return func(*args, **kwargs) if out is None else out
