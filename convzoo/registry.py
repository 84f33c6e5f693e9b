"""One registry class; ``LAYERS`` holds every layer and block convzoo can build by name.

>>> import convzoo
>>> conv = convzoo.create("conv", in_channels=3, out_channels=2, kernel_size=5)
>>> [name for name, _ in convzoo.list_layers("depth*")]
['depthwise', 'depthwise_separable']
"""

from __future__ import annotations

import contextlib
import difflib
import fnmatch
import importlib
import inspect
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from convzoo.errors import ConvZooError, LayerArgumentError, render
from convzoo.limits import check_int, check_params

if TYPE_CHECKING:  # pragma: no cover - torch is imported by the modules that register
    from torch import nn

T = TypeVar("T", bound="type[nn.Module]")


@dataclass(frozen=True)
class Entry:
    """A registered constructor with its name, one-line description and category."""

    name: str
    cls: type[nn.Module]
    category: str

    @property
    def description(self) -> str:
        doc = inspect.getdoc(self.cls) or ""
        return doc.strip().splitlines()[0] if doc.strip() else ""

    @property
    def params_formula(self) -> str:
        return getattr(self.cls, "params_formula", "")

    def keywords(self) -> list[str]:
        """The keyword arguments the constructor accepts, in signature order."""
        return [name for name, _ in _parameters(self.cls)]

    def required_keywords(self) -> list[str]:
        """The keywords without a default."""
        return [name for name, required in _parameters(self.cls) if required]


_PARAMETERS: dict[type[nn.Module], tuple[tuple[str, bool], ...]] = {}


def _parameters(cls: type[nn.Module]) -> tuple[tuple[str, bool], ...]:
    """``(name, required)`` for each keyword of ``cls.__init__`` (signatures are slow: cached)."""
    if cls not in _PARAMETERS:
        sig = inspect.signature(cls.__init__)
        _PARAMETERS[cls] = tuple(
            (p.name, p.default is p.empty)
            for p in sig.parameters.values()
            if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        )
    return _PARAMETERS[cls]


def natural_key(text: str) -> list[Any]:
    """Sort key that orders ``conv2`` before ``conv10``."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


class Listed(Protocol):
    """What a listing shows of an entry: a registry :class:`Entry` or a catalogue row."""

    @property
    def name(self) -> str: ...

    @property
    def category(self) -> str: ...


L = TypeVar("L", bound=Listed)


def matching(entries: Iterable[L], pattern: str = "*", category: str | None = None) -> list[L]:
    """The ``entries`` whose name matches the fnmatch ``pattern`` (and ``category`` when
    given), in natural order of their names."""
    found = [
        e
        for e in entries
        if fnmatch.fnmatchcase(e.name, pattern) and category in (None, e.category)
    ]
    return sorted(found, key=lambda e: natural_key(e.name))


def close_matches(word: str, candidates: list[str], n: int = 3) -> list[str]:
    """The registered names closest to ``word`` (substring matches first)."""
    subs = [c for c in candidates if word and (word in c or c in word)]
    fuzzy = difflib.get_close_matches(word, candidates, n=n, cutoff=0.5)
    return list(dict.fromkeys(subs + fuzzy))[:n]


class Registry:
    """Named constructors of ``nn.Module`` classes.

    ``register`` refuses duplicate names; ``create`` checks the name and the
    keywords before calling the constructor, so mistakes name the layer. ``modules`` are
    imported on the registry's first use (registering, looking up or listing), so that
    importing the registry costs nothing and its entries are there whenever it is read.
    """

    def __init__(self, kind: str, modules: tuple[str, ...] = ()) -> None:
        self.kind = kind
        self._modules = modules
        self._state = "empty" if modules else "loaded"  # empty -> loading -> loaded
        self._entries_: dict[str, Entry] = {}

    @property
    def _entries(self) -> dict[str, Entry]:
        """Every entry, the ``modules``' included (imported here on first use)."""
        if self._state == "empty":
            self._state = "loading"  # their own registrations land while they import
            try:
                for module in self._modules:
                    importlib.import_module(module)
            except BaseException:
                self._state = "empty"  # the same error again on the next use
                raise
            self._state = "loaded"
        return self._entries_

    def register(self, name: str, category: str = "layer") -> Callable[[T], T]:
        """Class decorator: ``@LAYERS.register("conv")``."""

        def decorator(cls: T) -> T:
            own = any(cls.__module__.startswith(m + ".") for m in self._modules)
            # a class of the registry's own modules registers while they import; any other
            # loads them first, so that a clash with a built-in name is refused here
            entries = self._entries_ if own else self._entries
            if name in entries:
                raise ConvZooError(
                    f"{self.kind} '{name}' is already registered "
                    f"(by {entries[name].cls.__qualname__})"
                )
            # a dynamic class attribute nn.Module does not declare; read back with getattr
            cls.registry_name = name  # type: ignore[attr-defined]
            entries[name] = Entry(name, cls, category)
            return cls

        return decorator

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def names(self) -> list[str]:
        return sorted(self._entries, key=natural_key)

    def entries(self, pattern: str = "*", category: str | None = None) -> list[Entry]:
        """The entries whose name matches the fnmatch ``pattern``, naturally sorted."""
        return matching(self._entries.values(), pattern, category)

    def get(self, name: str) -> Entry:
        """The entry for ``name``; a ``ValueError`` lists close matches otherwise."""
        if not isinstance(name, str):
            raise ConvZooError(
                f"a {self.kind} name is a str such as 'conv', got {render(name)} "
                f"({type(name).__name__})"
            )
        if name not in self._entries:
            hints = close_matches(name, self.names())
            hint = f"; did you mean {', '.join(repr(h) for h in hints)}?" if hints else ""
            raise ConvZooError(
                f"unknown {self.kind} '{name}'{hint} (see convzoo.list_layers() for all)"
            )
        return self._entries[name]

    def check_keywords(self, name: str, kwargs: dict[str, Any]) -> None:
        """Raise a ``ValueError`` for keywords ``name`` does not accept or lacks."""
        entry = self.get(name)
        accepted = entry.keywords()
        unknown = [k for k in kwargs if k not in accepted]
        if unknown:
            hints = {k: close_matches(k, accepted, n=1) for k in unknown}
            detail = ", ".join(
                f"'{k}'" + (f" (did you mean '{hints[k][0]}'?)" if hints[k] else "")
                for k in unknown
            )
            raise ConvZooError(
                f"{name}: unknown keyword {detail}; it accepts {', '.join(accepted)}"
            )
        missing = [k for k in entry.required_keywords() if k not in kwargs]
        if missing:
            raise ConvZooError(f"{name}: missing required keyword {', '.join(missing)}")

    def create(self, name: str, /, **kwargs: Any) -> nn.Module:
        """Build the module registered as ``name`` with ``kwargs``, within the limits a
        config's layer has: every int of a keyword (inside lists, tuples and dicts too) at
        most :data:`~convzoo.limits.MAX_SIZE` in magnitude, and the parameters counted
        against :data:`~convzoo.limits.MAX_PARAMS` on the meta device before the real
        module is built (so the constructor, and any factory passed to it, runs twice; a
        constructor that cannot run on meta, say a user's layer calling ``.item()``, is
        counted once built)."""
        import torch

        self.check_keywords(name, kwargs)
        cls = self.get(name).cls
        for key, value in kwargs.items():
            check_ints(value, f"{name}: {key}")
        on_meta = torch.empty(0).is_meta  # inside `with torch.device("meta")`: built once
        probe = None
        try:
            with contextlib.nullcontext() if on_meta else torch.device("meta"):
                probe = cls(**kwargs)
        except ConvZooError:
            raise
        except Exception:
            if on_meta:
                raise
        if probe is not None:
            check_params(sum(p.numel() for p in probe.parameters()), f"{name} has")
            if on_meta:
                return probe
        module = cls(**kwargs)
        if probe is None:  # a constructor that cannot run on meta: counted once built
            check_params(sum(p.numel() for p in module.parameters()), f"{name} has")
        return module

    def resolve(
        self, value: object, layer: str, argument: str, category: str | None = None
    ) -> Callable[..., nn.Module]:
        """A layer factory: ``value`` itself if callable, else the class registered under that
        name (of ``category`` when given), else a one-line error naming ``layer`` and
        ``argument``. Blocks take the layers they compose as factories; names from configs
        and ``create`` are resolved here, once."""
        if callable(value) and not isinstance(value, str):
            return value
        names = [n for n, e in self._entries.items() if category in (None, e.category)]
        if isinstance(value, str) and value in names:
            return self._entries[value].cls
        hints = close_matches(str(value), sorted(names, key=natural_key))
        kind = f"registered {category} layer" if category else f"registered {self.kind}"
        raise LayerArgumentError(
            layer,
            argument,
            f"must name a {kind} or be a callable, got {render(value)}"
            + (f" (did you mean {', '.join(repr(h) for h in hints)}?)" if hints else "")
            + (f"; choose from {', '.join(sorted(names, key=natural_key))}" if category else ""),
        )

    def list(self, pattern: str = "*", category: str | None = None) -> list[tuple[str, str]]:
        """``(name, description)`` pairs whose name matches the fnmatch ``pattern``."""
        return [(e.name, e.description) for e in self.entries(pattern, category)]


def check_ints(value: Any, what: str, depth: int = 0) -> None:
    """Every int in ``value`` (a keyword's value; lists, tuples and dict values up to four
    levels deep) within :func:`~convzoo.limits.check_int`, else one line naming ``what``."""
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            check_int(value)
        except ConvZooError as exc:
            raise ConvZooError(f"{what}: {exc}") from None
    elif isinstance(value, (list, tuple, dict)) and depth < 4:
        for item in value.values() if isinstance(value, dict) else value:
            check_ints(item, what, depth + 1)


LAYERS = Registry("layer", modules=("convzoo.layers", "convzoo.blocks"))
register = LAYERS.register


def create(name: str, /, **kwargs: Any) -> nn.Module:
    """Build a registered layer or block: ``create("conv", in_channels=3, ...)``."""
    return LAYERS.create(name, **kwargs)


def list_layers(pattern: str = "*", category: str | None = None) -> list[tuple[str, str]]:
    """Registered ``(name, description)`` pairs matching ``pattern`` (fnmatch), naturally sorted."""
    return LAYERS.list(pattern, category)
