"""A deep copy that shares nothing mutable with its original and names what it cannot copy.

``Copier(memo, stand_in).copy(x)`` works as ``copy.deepcopy(x, memo)`` (the same memo
convention, so a pre-filled memo maps objects to stand-ins, and sharing is kept: an object
reachable twice is copied once), under the rules the analyzer's private copy of a user's
model needs (isolation.py):

* Shared: immutable values and stateless handles: numbers, strings, bytes, ``None``,
  dtypes, devices, ``torch.Size``, ranges, functions, classes, code, Python modules,
  descriptors. What functions and modules reach (globals, closures) is not the model's;
  ``copy.deepcopy`` shares these too (Python modules it refuses).
* Copied structurally, always: dicts, lists, sets, tuples, bound methods and every object
  that reduces (plain objects with a ``__dict__`` or slots, dataclasses, named tuples,
  deques ...), so one uncopyable leaf deep inside never makes its container shared.
* Recreated: locks (a new, unheld lock of the same type: the copy's lock guards the
  copy's own state, which no other thread can reach), methods of builtin objects
  (``self.push = self.items.append`` becomes the copied list's ``append``; deepcopy
  shares the original's), live weak references (to the copy of their referent, which
  they keep alive; deepcopy shares them).
* A class's own ``__deepcopy__`` decides for its instances (tensors, arrays, enums).
* Anything else that cannot be copied (open files, generators, sockets, thread-locals, C
  objects without a copy protocol) raises :class:`Uncopyable` with the path to it from
  the root (``.block.state['file']``): never a silent share.

Modules without a copy protocol of their own take a path several times faster than
deepcopy: parameters and buffers come from the memo (``stand_in`` makes those it lacks),
immutable values are shared and containers of them copied shallowly.
"""

from __future__ import annotations

import copyreg
import threading
import types
import weakref
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from convzoo.errors import first_line, render

_ATOMIC = frozenset({int, float, bool, str, bytes, type(None), torch.dtype, torch.device})
_SHARED = _ATOMIC | {
    complex,
    range,
    torch.Size,
    torch.layout,
    torch.memory_format,
    type(Ellipsis),
    type(NotImplemented),
    property,
    types.FunctionType,
    types.CodeType,
    types.ModuleType,
    types.MethodDescriptorType,
    types.WrapperDescriptorType,
    types.ClassMethodDescriptorType,
    types.GetSetDescriptorType,
    types.MemberDescriptorType,
}
_CONTAINERS = frozenset({dict, OrderedDict, set, list})
_TENSOR_DICTS = ("_parameters", "_buffers")
_PROTOCOL = ("__deepcopy__", "__reduce_ex__", "__reduce__", "__getstate__")
_MODULE_PROTOCOL = tuple(getattr(nn.Module, name, None) for name in _PROTOCOL)
_plain_types: dict[type, bool] = {}  # plain(), cached
_MISSING = object()
_NEWOBJ = getattr(copyreg, "__newobj__")  # noqa: B009 - not in the stubs


class _KeptRef(weakref.ref):
    """A weak reference that also holds its referent: the copy's referent lives as long
    as the copy's reference does (nothing else of the copy may hold it)."""

    __slots__ = ("_kept",)

    def __init__(self, target: Any) -> None:
        self._kept = target  # weakref.ref.__new__ took the referent


class Uncopyable(Exception):
    """An object the copy cannot make; :attr:`path` leads to it from the copied root."""

    def __init__(self, obj: Any, exc: BaseException) -> None:
        kind = type(obj)
        module = "" if kind.__module__ == "builtins" else f"{kind.__module__}."
        self.kind = f"{module}{kind.__qualname__}"
        self.reason = f"{type(exc).__name__}: {first_line(exc, 120)}"
        self._segments: list[str] = []
        super().__init__(self.kind)

    @property
    def path(self) -> str:
        """``.block.state['file']``: attributes, keys and indices from the root, at most
        about 200 characters (the middle cut)."""
        path = "".join(reversed(self._segments))
        return path if len(path) <= 200 else f"{path[:90]}...{path[-90:]}"

    def under(self, segment: str) -> None:
        """Record that the failing object lies under ``segment`` of its parent."""
        self._segments.append(segment)


def _key(key: Any) -> str:
    return f"[{render(key, 40)}]"


def _attribute(name: Any) -> str:
    return f".{name}" if isinstance(name, str) and name.isidentifier() else _key(name)


def plain(cls: type) -> bool:
    """Whether ``cls`` deep-copies as ``nn.Module`` does: a new instance, a deep copy of
    ``__dict__``, then ``__setstate__`` (which a class may override, as convolutions do)."""
    known = _plain_types.get(cls)
    if known is None:
        if len(_plain_types) >= 4096:  # bounded: some libraries make a class per instance
            _plain_types.clear()
        known = _plain_types[cls] = all(
            getattr(cls, name, None) is base
            for name, base in zip(_PROTOCOL, _MODULE_PROTOCOL, strict=True)
        )
    return known


def _all_atomic(container: Any) -> bool:
    """Whether a dict's keys and values, or a set's or list's items, are all immutable
    atoms (so a shallow copy is a deep one)."""
    if isinstance(container, dict):
        return all(type(k) in _ATOMIC and type(v) in _ATOMIC for k, v in container.items())
    return all(type(v) in _ATOMIC for v in container)


class Copier:
    """One deep copy (see the module docstring); ``memo`` as ``copy.deepcopy``'s."""

    def __init__(self, memo: dict[int, Any], stand_in: Callable[[Any], Any]) -> None:
        self.memo = memo
        self.stand_in = stand_in
        self._alive: list[Any] = memo.setdefault(id(memo), [])  # as copy._keep_alive

    def _remember(self, x: Any, y: Any) -> None:
        self.memo[id(x)] = y
        self._alive.append(x)  # a temporary's id is never reused while the memo lives

    def copy(self, x: Any) -> Any:
        """The copy of ``x``; :class:`Uncopyable` when some object under it has none."""
        y = self.memo.get(id(x), _MISSING)
        if y is not _MISSING:
            return y
        kind = type(x)
        if kind in _SHARED:
            return x
        handler = _HANDLERS.get(kind)
        try:
            y = handler(self, x) if handler is not None else self._other(x)
        except Uncopyable:
            raise
        except Exception as exc:
            raise Uncopyable(x, exc) from None
        if y is not x:
            self._remember(x, y)
        return y

    def child(self, x: Any, segment: str) -> Any:
        """:meth:`copy` of ``x``, found under ``segment`` of the object being copied."""
        try:
            return self.copy(x)
        except Uncopyable as exc:
            exc.under(segment)
            raise

    def module(self, module: nn.Module) -> nn.Module:
        """The copy of a module without a copy protocol of its own, built directly."""
        memo = self.memo
        new = memo.get(id(module), _MISSING)
        if new is not _MISSING:
            return new
        new = object.__new__(type(module))
        memo[id(module)] = new
        state: dict[str, Any] = {}
        for name, value in list(module.__dict__.items()):  # a snapshot: threads may add
            kind = type(value)
            if kind in _SHARED:
                state[name] = value
            elif name == "_modules":
                state[name] = kind((k, self._submodule(m, k)) for k, m in value.items())
            elif name in _TENSOR_DICTS:
                try:
                    state[name] = kind(
                        (k, None if t is None else memo[id(t)]) for k, t in value.items()
                    )
                except KeyError:  # a module reached outside the root's modules()
                    state[name] = kind((k, self._tensor(t)) for k, t in value.items())
            elif kind is tuple and all(type(v) in _ATOMIC for v in value):
                state[name] = value
            elif kind in _CONTAINERS and id(value) not in memo:
                shallow = value.copy()  # atomic: no other thread changes it meanwhile
                if not shallow or _all_atomic(shallow):  # of shared immutable values
                    memo[id(value)] = state[name] = shallow
                else:
                    state[name] = self.child(value, _attribute(name))
            else:
                state[name] = self.child(value, _attribute(name))
        new.__setstate__(state)
        return new

    def _submodule(self, module: nn.Module | None, name: str) -> nn.Module | None:
        if module is None:
            return None
        try:
            return self.module(module) if plain(type(module)) else self.copy(module)
        except Uncopyable as exc:
            exc.under(f".{name}")
            raise
        except Exception as exc:
            error = Uncopyable(module, exc)
            error.under(f".{name}")
            raise error from None

    def _tensor(self, t: torch.Tensor | None) -> torch.Tensor | None:
        if t is None:
            return None
        new = self.memo.get(id(t), _MISSING)
        if new is _MISSING:
            new = self.stand_in(t)
            self._remember(t, new)
        return new

    def _other(self, x: Any) -> Any:
        """Classes, modules, objects with a ``__deepcopy__``, then the reduce protocol."""
        if isinstance(x, type):
            return x
        if isinstance(x, nn.Module) and plain(type(x)):
            return self.module(x)
        own = getattr(x, "__deepcopy__", None)
        if own is not None:
            return own(self.memo)
        reductor = copyreg.dispatch_table.get(type(x))
        reduced = reductor(x) if reductor is not None else x.__reduce_ex__(4)
        if isinstance(reduced, str):  # a global, by name
            return x
        return self._reconstruct(x, *reduced)

    def _reconstruct(
        self,
        x: Any,
        func: Callable[..., Any],
        args: tuple[Any, ...],
        state: Any = None,
        listiter: Any = None,
        dictiter: Any = None,
        *_: Any,
    ) -> Any:
        """``copy._reconstruct`` with every piece copied by this copier."""
        head = 1 if func is _NEWOBJ else 0  # cls.__new__(cls, *items): items from [0]
        y = func(*args[:head], *_tuple(self, args[head:]))
        self._remember(x, y)
        if state is not None:
            state = self._state(state)
            if hasattr(y, "__setstate__"):
                y.__setstate__(state)
            else:
                slots = None
                if isinstance(state, tuple) and len(state) == 2:
                    state, slots = state
                if state:
                    y.__dict__.update(state)
                for key, value in (slots or {}).items():
                    setattr(y, key, value)
        for i, item in enumerate(listiter or ()):
            y.append(self.child(item, f"[{i}]"))
        for key, value in dictiter or ():
            y[self.copy(key)] = self.child(value, _key(key))
        return y

    def _state(self, state: Any) -> Any:
        """A reduced object's state; attributes named ``.name`` on a failure."""
        pair = type(state) is tuple and len(state) == 2
        if type(state) is dict or pair and all(type(s) in (dict, type(None)) for s in state):
            return self._fields(state) if type(state) is dict else tuple(map(self._fields, state))
        return self.copy(state)

    def _fields(self, fields: dict[str, Any] | None) -> dict[str, Any] | None:
        """A ``__dict__`` or slots state: the copy, ``.name`` in the path on a failure."""
        if fields is None:
            return None
        new = self.memo.get(id(fields), _MISSING)
        return _dict(self, fields, _attribute) if new is _MISSING else new


def _dict(copier: Copier, x: dict[Any, Any], segment: Callable[[Any], str] = _key) -> Any:
    y = type(x)()
    copier._remember(x, y)
    for key, value in list(x.items()):  # a snapshot: another thread may add keys
        y[copier.copy(key)] = copier.child(value, segment(key))
    return y


def _list(copier: Copier, x: list[Any]) -> list[Any]:
    y: list[Any] = []
    copier._remember(x, y)
    for i, item in enumerate(list(x)):
        y.append(copier.child(item, f"[{i}]"))
    return y


def _tuple(copier: Copier, x: tuple[Any, ...]) -> tuple[Any, ...]:
    items = [copier.child(item, f"[{i}]") for i, item in enumerate(x)]
    again = copier.memo.get(id(x), _MISSING)  # reached again through its own items
    if again is not _MISSING:
        return again
    return x if all(a is b for a, b in zip(items, x, strict=True)) else tuple(items)


def _set(copier: Copier, x: set[Any]) -> set[Any]:
    y: set[Any] = set()
    copier._remember(x, y)
    for item in list(x):
        y.add(copier.child(item, "{" + render(item, 40) + "}"))
    return y


def _frozenset(copier: Copier, x: frozenset[Any]) -> frozenset[Any]:
    items = [copier.child(item, "{" + render(item, 40) + "}") for item in x]
    return x if all(a is b for a, b in zip(items, x, strict=True)) else frozenset(items)


def _method(copier: Copier, x: types.MethodType) -> types.MethodType:
    return types.MethodType(x.__func__, copier.child(x.__self__, ".__self__"))


def _builtin_method(copier: Copier, x: types.BuiltinMethodType) -> Any:
    """A builtin function is shared; a builtin method is taken from its object's copy."""
    owner = x.__self__
    if owner is None or isinstance(owner, (types.ModuleType, type)):
        return x
    new = copier.child(owner, ".__self__")
    bound = getattr(new, x.__name__, None)
    if getattr(bound, "__self__", None) is not new:
        raise TypeError(f"its {x.__name__} is not found on the copy of its object")
    return bound


def _weakref(copier: Copier, x: weakref.ref) -> Any:
    target = x()
    if target is None:
        return x  # dead: immutable
    new = copier.child(target, "()")
    return x if new is target else _KeptRef(new)


def _lock(copier: Copier, x: Any) -> Any:
    return _LOCKS[type(x)]()


_LOCKS: dict[type, Callable[[], Any]] = {
    type(threading.Lock()): threading.Lock,
    type(threading.RLock()): threading.RLock,
}
_HANDLERS: dict[type, Callable[[Copier, Any], Any]] = {
    dict: _dict,
    OrderedDict: _dict,
    list: _list,
    tuple: _tuple,
    set: _set,
    frozenset: _frozenset,
    types.MethodType: _method,
    types.BuiltinMethodType: _builtin_method,
    weakref.ref: _weakref,
    **{lock: _lock for lock in _LOCKS},
}
