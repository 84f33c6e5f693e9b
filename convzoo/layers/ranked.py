"""One layer class for 1-D, 2-D and 3-D inputs, chosen by the keyword ``dims``.

A class deriving from :class:`Ranked` is written once, against torch's rank-generic base
(``_ConvNd``, ``_BatchNorm``, ...). ``cls(..., dims=d)`` builds an instance of a twin
subclass that also derives from torch's class for that rank (``nn.Conv1d``,
``nn.Conv2d``, ``nn.Conv3d``, listed in ``torch_bases``), so a 2-D ``conv`` *is* an
``nn.Conv2d`` and a 3-D one an ``nn.Conv3d``, and tools that test for them still work.
The twin's class attribute ``rank`` is ``d``; the 2-D twin keeps the class name.

:func:`defaults` makes a subclass that only changes default values, without repeating
the signature.
"""

from __future__ import annotations

import functools
import inspect
import sys
from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

from convzoo.layers.checks import dims as check_dims

T = TypeVar("T", bound=type)
_TWINS: dict[tuple[type, int], type] = {}


def twin(cls: type, dims: int) -> type:
    """The subclass of ``cls`` for ``dims`` spatial axes (cached; ``cls`` if it is one)."""
    if getattr(cls, "rank", 0):
        return cls
    key = (cls, dims)
    if key not in _TWINS:
        bases = cls.torch_bases  # type: ignore[attr-defined]
        suffix = "" if dims == 2 else f"{dims}d"
        name = f"{cls.__name__}{suffix}"
        extra = (bases[dims],) if dims in bases else ()
        made = type(name, (cls, *extra), {"rank": dims, "__module__": cls.__module__})
        made.__qualname__ = f"{cls.__qualname__}_{dims}d"
        setattr(sys.modules[cls.__module__], made.__qualname__, made)  # picklable by name
        _TWINS[key] = made
    return _TWINS[key]


class Ranked:
    """Mixin: ``cls(..., dims=d)`` is an instance of ``twin(cls, d)``; see the module doc."""

    torch_bases: ClassVar[dict[int, type]] = {}
    rank: ClassVar[int] = 0  # set on twins only
    default_dims: ClassVar[int] = 2

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        if cls.rank:
            return super().__new__(cls)
        name = getattr(cls, "registry_name", cls.__name__)
        dims = check_dims(kwargs.get("dims", cls.default_dims), name)
        return super().__new__(twin(cls, dims))

    @property
    def dims(self) -> int:
        """Number of spatial axes of the inputs this layer takes."""
        return self.rank or self.default_dims


def defaults(**values: Any) -> Callable[[T], T]:
    """Class decorator: the same constructor as the base class with other default values.

    The signature the registry reads (``inspect.signature``) shows the new defaults. A
    class may still define an ``__init__`` taking ``(*args, **kwargs)`` that forwards to the
    base one: it receives every argument, defaults filled in.
    """

    def decorator(cls: T) -> T:
        base_init = cls.__mro__[1].__init__  # type: ignore[misc]
        target = cls.__dict__.get("__init__", base_init)  # an own __init__ forwarding to it
        sig = inspect.signature(target if hasattr(target, "__signature__") else base_init)
        for key in values:
            if key not in sig.parameters:
                raise TypeError(f"{cls.__name__}: the base constructor has no {key!r}")
        params = [
            p.replace(default=values[p.name]) if p.name in values else p
            for p in sig.parameters.values()
        ]
        new_sig = sig.replace(parameters=params)

        @functools.wraps(base_init)
        def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
            bound = new_sig.bind(self, *args, **kwargs)
            bound.apply_defaults()
            target(*bound.args, **bound.kwargs)

        __init__.__signature__ = new_sig  # type: ignore[attr-defined]
        cls.__init__ = __init__  # type: ignore[misc]
        return cls

    return decorator


def extends(cls: T) -> T:
    """Class decorator for ``__init__(self, *args, <new keyword-only args>, **kwargs)`` that
    forwards to the base constructor: the signature the registry reads is the base's with
    the new keywords added, so no subclass repeats the base's argument list."""
    base = inspect.signature(cls.__mro__[1].__init__)  # type: ignore[misc]
    own = inspect.signature(cls.__init__)  # type: ignore[misc]
    new = [p for p in own.parameters.values() if p.kind is p.KEYWORD_ONLY]
    old = [p for p in base.parameters.values() if p.name not in {q.name for q in new}]
    positional = [p for p in old if p.kind is not p.KEYWORD_ONLY]
    keyword = [p for p in old if p.kind is p.KEYWORD_ONLY]
    cls.__init__.__signature__ = base.replace(parameters=positional + new + keyword)  # type: ignore[misc]
    return cls
