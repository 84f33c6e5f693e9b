"""CLI targets: a string such as ``resnet18`` or ``mynet.py:Net`` -> a model to analyze.

Each accepted form is one :class:`Form` in :data:`FORMS`, tried in order: the first whose
``matches`` accepts the text resolves it. Every form builds the model with random, seeded
weights (configs on the meta device: :func:`convzoo.real.materialize` builds their real
twin when real-tensor work needs it) and never touches the network. A text no form
accepts gets one line listing the forms and the closest names.

==========================  =====================================================
``configs/resnet18.yaml``   a YAML config file
``resnet18``                a config shipped with convzoo (``convzoo/configs/``)
``torchvision:NAME``        any builder in ``torchvision.models.list_models()``
``timm:NAME``               any ``timm.list_models()`` name (extra ``[timm]``)
``path/to/file.py:NAME``    a module instance, class or factory in a Python file
``package.module:NAME``     the same in an importable module
==========================  =====================================================
"""

from __future__ import annotations

import difflib
import importlib
import importlib.machinery
import importlib.util
import json
import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from convzoo.catalogue import live_torchvision_names, torchvision_names
from convzoo.errors import ConvZooError, render, user_code
from convzoo.limits import check_int
from convzoo.registry import close_matches

if TYPE_CHECKING:  # pragma: no cover - torch is imported when a model is built
    from torch import nn

Size = tuple[int, ...]
Kwargs = dict[str, Any]
DOTTED = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*$")
_MISSING = object()


@dataclass
class Target:
    """A resolved target: the model, its default inputs (one ``(C, H, W)``-like size per
    positional input, batch excluded) and the name reports show."""

    model: nn.Module
    input_size: tuple[Size, ...]
    name: str


@dataclass(frozen=True)
class Form:
    """One accepted target form: how to recognise it and how to resolve it."""

    name: str
    example: str
    matches: Callable[[str], bool]
    resolve: Callable[[str, Kwargs | None, tuple[Size, ...]], Target]
    files: Callable[[str], list[Path]]


FORMS: list[Form] = []


def form(
    name: str,
    example: str,
    matches: Callable[[str], bool],
    files: Callable[[str], list[Path]] = lambda text: [],
) -> Callable[
    [Callable[[str, Kwargs | None, tuple[Size, ...]], Target]],
    Callable[[str, Kwargs | None, tuple[Size, ...]], Target],
]:
    """Register a target form; forms are tried in registration order. ``files`` lists the
    files the target is read from (:func:`own_files`), without running anything."""

    def decorator(
        fn: Callable[[str, Kwargs | None, tuple[Size, ...]], Target],
    ) -> Callable[[str, Kwargs | None, tuple[Size, ...]], Target]:
        FORMS.append(Form(name, example, matches, fn, files))
        return fn

    return decorator


def forms_text() -> str:
    """``'a config path (configs/resnet18.yaml), ...'``: every accepted form with an example."""
    return ", ".join(f"{f.name} ({f.example})" for f in FORMS)


def own_files(text: str) -> list[Path]:
    """The files target ``text`` is read from (its config, its Python file), found without
    importing or building anything: a command refuses to write over them."""
    return next((f.files(text) for f in FORMS if f.matches(text)), [])


def parse_kwargs(text: str | None) -> Kwargs | None:
    """``'{"num_classes": 10}'`` -> ``{"num_classes": 10}``; strict JSON object or an error.

    Its ints are sizes and counts for a builder: each at most
    :data:`~convzoo.limits.MAX_SIZE` in magnitude (:func:`~convzoo.limits.check_int`);
    nesting deeper than Python's recursion limit is refused too.
    """
    if text is None:
        return None
    try:
        value = json.loads(text, parse_int=_kwargs_int)
    except json.JSONDecodeError as exc:
        raise ConvZooError(f"--kwargs must be a JSON object: {exc.msg} in {render(text)}") from None
    except RecursionError:
        raise ConvZooError(f"--kwargs is nested too deeply: {render(text)}") from None
    if not isinstance(value, dict):
        raise ConvZooError("--kwargs must be a JSON object like '{\"num_classes\": 10}'")
    return value


def _kwargs_int(digits: str) -> int:
    """A JSON int of ``--kwargs`` within :func:`~convzoo.limits.check_int`; a long one is
    made only to its magnitude (Python refuses ints of over 4,300 digits from text; messages
    describe ints of over 77 digits by their length)."""
    size = len(digits)
    value = int(digits) if size <= 1000 else int(digits[:100]) * 10 ** (size - 100)
    try:
        return check_int(value)
    except ConvZooError as exc:
        raise ConvZooError(f"--kwargs: {exc}") from None


def resolve(
    text: str,
    sizes: tuple[Size, ...] = (),
    kwargs: Kwargs | None = None,
    *,
    input_needed: bool = True,
) -> Target:
    """The model named by ``text``; ``sizes`` (from ``--input``) override its default inputs
    and ``kwargs`` (from ``--kwargs``) go to its builder. Weights are random but seeded
    (:data:`convzoo.real.SEED`), and the caller's random state is left as it was. With
    ``input_needed=False`` a target without a default input resolves too (its
    ``input_size`` is then empty: :func:`convzoo.analyze` was given other inputs)."""
    found = form_of(text)
    if found is None:
        hints = suggest(text, known_names(text))
        hint = f"; did you mean {', '.join(hints)}?" if hints else ""
        raise ConvZooError(
            f"unknown target {render(text)}{hint} (a target is one of: {forms_text()})"
        )
    from convzoo.real import seeded_rng  # imports torch: only once a form matches

    with seeded_rng():  # random weights, but the same on every run
        target = found.resolve(text, kwargs, sizes)
    target.input_size = sizes or target.input_size
    if input_needed and not target.input_size:
        raise ConvZooError(
            f"{text} has no default input size: give one with --input, e.g. --input 3x224x224"
        )
    return target


def form_of(text: str) -> Form | None:
    """The first form in :data:`FORMS` that accepts ``text`` (None: no form does)."""
    return next((f for f in FORMS if f.matches(text)), None)


def known_names(text: str) -> list[str]:
    """Names to suggest for an unknown ``text``: packaged configs and torchvision builders
    (from package data: a mistyped target is answered without importing torch)."""
    names = list(packaged_configs())
    if ":" not in text:
        names += [f"torchvision:{n}" for n in torchvision_names()]
    return names


def suggest(word: str, names: list[str]) -> list[str]:
    """Up to three of ``names`` closest to ``word``: spelling first, then substrings."""
    return difflib.get_close_matches(word, names, n=3, cutoff=0.6) or close_matches(word, names)


def no_kwargs(kwargs: Kwargs | None, what: str) -> None:
    if kwargs:
        raise ConvZooError(f"--kwargs does not apply to {what} (edit the config instead)")


# -- configs ----------------------------------------------------------------------------


def packaged_configs() -> dict[str, Path]:
    """The configs shipped in ``convzoo/configs`` by name: ``{"resnet18": path, ...}``."""
    root = resources.files("convzoo") / "configs"
    return {
        Path(entry.name).stem: Path(str(entry))
        for entry in sorted(root.iterdir(), key=lambda e: e.name)
        if entry.name.endswith((".yaml", ".yml"))
    }


def _config(path: Path, sizes: tuple[Size, ...]) -> Target:
    from convzoo.builder import build

    model = build(path, sizes[0] if len(sizes) == 1 else None, meta=True)  # counting: no weights
    return Target(model, (tuple(model.input_size),), model.config_name)


def _is_config_path(text: str) -> bool:
    """A YAML name, or any existing path that is not a Python file (the config loader then
    refuses what is not a regular YAML file: a directory, a FIFO, ``/dev/zero``)."""
    return text.endswith((".yaml", ".yml")) or (Path(text).exists() and ".py" not in text)


def _config_path_file(text: str) -> Path:
    if not Path(text).exists():
        hints = suggest(Path(text).stem, list(packaged_configs()))
        hint = f"; packaged configs by name: {', '.join(hints)}" if hints else ""
        raise ConvZooError(f"no config file {render(text)}{hint}")
    return Path(text)


def _packaged_file(text: str) -> Path:
    return packaged_configs()[text]


@form("a config path", "configs/resnet18.yaml", _is_config_path, lambda text: [Path(text)])
def config_path(text: str, kwargs: Kwargs | None, sizes: tuple[Size, ...]) -> Target:
    no_kwargs(kwargs, "configs")
    return _config(_config_path_file(text), sizes)


@form(
    "a packaged config",
    "resnet18",
    lambda text: text in packaged_configs(),
    lambda text: [packaged_configs()[text]],
)
def packaged_config(text: str, kwargs: Kwargs | None, sizes: tuple[Size, ...]) -> Target:
    no_kwargs(kwargs, "configs")
    return _config(_packaged_file(text), sizes)


CONFIG_FILES: dict[Callable[..., Target], Callable[[str], Path]] = {
    config_path: _config_path_file,
    packaged_config: _packaged_file,
}
"""The forms that name a config, by their resolver -> the config's YAML file."""


def config_file(text: str) -> Path:
    """The YAML file of a config target ``text``: a path (``configs/resnet18.yaml``) or a
    packaged config's name (``resnet18``). The other forms are refused in one line: a
    config is what :func:`convzoo.build` builds (``analyze`` and ``report`` take them all)."""
    found = form_of(text)
    if found is not None and found.resolve in CONFIG_FILES:
        return CONFIG_FILES[found.resolve](text)
    configs = ", ".join(packaged_configs())
    if found is None:
        hints = suggest(text, list(packaged_configs()))
        hint = f"; did you mean {', '.join(hints)}?" if hints else ""
        raise ConvZooError(
            f"no config {render(text)}{hint} (a config is a YAML file or a packaged "
            f"config: {configs})"
        )
    raise ConvZooError(
        f"{render(text)} is {found.name}, not a config: build makes models from configs (a "
        f"YAML file or a packaged config such as resnet18); analyze and report take any target"
    )


# -- torchvision and timm -----------------------------------------------------------------


def _prefix(prefix: str) -> Callable[[str], bool]:
    return lambda text: text.startswith(prefix)


def _unknown(kind: str, name: str, names: list[str], hint_prefix: str, where: str) -> ConvZooError:
    hints = suggest(name, names)
    hint = f"; did you mean {', '.join(hint_prefix + h for h in hints)}?" if hints else ""
    return ConvZooError(f"unknown {kind} model {render(name)}{hint} ({where} has all {len(names)})")


@form("a torchvision model", "torchvision:resnet18", _prefix("torchvision:"))
def torchvision_target(text: str, kwargs: Kwargs | None, sizes: tuple[Size, ...]) -> Target:
    from convzoo import torchvision_models

    name = text.split(":", 1)[1]
    names = live_torchvision_names()
    if name not in names:
        where = "torchvision.models.list_models()"
        raise _unknown("torchvision", name, names, "torchvision:", where)
    model = torchvision_models.build(name, kwargs or {})
    return Target(model, torchvision_models.default_input(name, model), text)


@form("a timm model", "timm:resnet18", _prefix("timm:"))
def timm_target(text: str, kwargs: Kwargs | None, sizes: tuple[Size, ...]) -> Target:
    name = text.split(":", 1)[1]
    try:
        import timm
    except Exception:
        raise ConvZooError(
            f"{text} needs timm: pip install 'convzoo[timm]' (or pip install timm)"
        ) from None
    names = timm.list_models()
    if name.split(".")[0] not in names:  # "resnet18" or a pretrained tag "resnet18.a1_in1k"
        raise _unknown("timm", name, names, "timm:", "timm.list_models()")
    with user_code(f"timm cannot build {render(name)}", everything=True):
        model = timm.create_model(name, pretrained=False, **(kwargs or {}))  # nothing downloaded
    cfg = getattr(model, "pretrained_cfg", None) or getattr(model, "default_cfg", None) or {}
    size = tuple(int(v) for v in cfg.get("input_size", (3, 224, 224)))
    return Target(model, (size,), text)


# -- Python objects ---------------------------------------------------------------------


def _split(text: str) -> tuple[str, str]:
    where, _, attr = text.rpartition(":")
    return where, attr


def _is_file_object(text: str) -> bool:
    where, attr = _split(text)
    return where.endswith(".py") and bool(attr)


def _is_module_object(text: str) -> bool:
    where, attr = _split(text)
    return bool(DOTTED.match(where)) and bool(DOTTED.match(attr))


def _module_file(text: str) -> list[Path]:
    """The source file of ``package.module:NAME``'s module, found the way ``import`` finds
    it (the working directory first) but without running any package's ``__init__``."""
    parts = _split(text)[0].split(".")
    where: list[str] = [os.getcwd(), *sys.path]
    spec = None
    try:
        for i in range(len(parts)):
            spec = importlib.machinery.PathFinder.find_spec(".".join(parts[: i + 1]), where)
            if spec is None:
                return []
            where = list(spec.submodule_search_locations or [])
    except Exception:  # a broken path entry: nothing to protect
        return []
    return [Path(spec.origin)] if spec is not None and spec.has_location and spec.origin else []


def _load_file(path: str) -> Any:
    file = Path(path)
    if not file.is_file():
        raise ConvZooError(f"no Python file {render(path, 200)}")
    name = f"convzoo_target_{abs(hash(str(file.resolve())))}"
    spec = importlib.util.spec_from_file_location(name, file)
    if spec is None or spec.loader is None:  # pragma: no cover
        raise ConvZooError(f"cannot import {render(path, 200)}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickling look their module up
    try:
        with user_code(f"cannot import {render(path, 200)}", everything=True):
            spec.loader.exec_module(module)
    except BaseException:  # Ctrl-C included
        sys.modules.pop(name, None)
        raise
    return module


def _import(name: str) -> Any:
    cwd = os.getcwd()
    if cwd not in sys.path:  # as `python -m`: modules next to the user are importable
        sys.path.insert(0, cwd)
    with user_code(f"cannot import module {render(name)}", everything=True):
        return importlib.import_module(name)


def _instantiate(module: Any, attr: str, kwargs: Kwargs | None, text: str) -> Target:
    """``module.attr``: an ``nn.Module`` instance, or a class/factory called with ``kwargs``.
    Each step that runs the user's code (a module ``__getattr__``, the call, the model's
    ``input_size``) turns whatever it raises, ``sys.exit`` included, into one line."""
    from torch import nn

    obj = module
    for part in attr.split("."):
        with user_code(f"{text}: reading {render(part)}", everything=True):
            found = getattr(obj, part, _MISSING)
        if found is _MISSING:
            public = [n for n in dir(obj) if not n.startswith("_")]
            hints = suggest(part, public)
            hint = f"; did you mean {', '.join(hints)}?" if hints else ""
            raise ConvZooError(f"{text}: no attribute {render(part)}{hint}")
        obj = found
    if isinstance(obj, nn.Module):
        if kwargs:
            raise ConvZooError(f"{text} is a module instance: --kwargs does not apply")
        model = obj
    elif callable(obj):
        with user_code(f"{text}(**{render(kwargs or {})}) failed", everything=True):
            model = obj(**(kwargs or {}))
    else:
        raise ConvZooError(f"{text} is a {type(obj).__name__}, not a module, class or factory")
    if not isinstance(model, nn.Module):
        raise ConvZooError(f"{text} returned a {type(model).__name__}, not an nn.Module")
    with user_code(f"{text}.input_size", everything=True):
        size = getattr(model, "input_size", None)  # its values are checked by analyze
    size = () if size is None else size
    if not isinstance(size, (tuple, list)):
        raise ConvZooError(
            f"{text}: the model's input_size must be a size like (3, 224, 224), got {render(size)}"
        )
    return Target(model, (tuple(size),) if size else (), text)


@form(
    "a class or factory in a file",
    "path/to/file.py:Net",
    _is_file_object,
    lambda text: [Path(_split(text)[0])],
)
def file_object(text: str, kwargs: Kwargs | None, sizes: tuple[Size, ...]) -> Target:
    where, attr = _split(text)
    return _instantiate(_load_file(where), attr, kwargs, text)


@form("a class or factory in a module", "package.module:factory", _is_module_object, _module_file)
def module_object(text: str, kwargs: Kwargs | None, sizes: tuple[Size, ...]) -> Target:
    where, attr = _split(text)
    return _instantiate(_import(where), attr, kwargs, text)
