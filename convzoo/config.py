"""YAML or dict configs: loading, locations inside them, and the errors that name both.

A config is a mapping::

    name: seed_64x64
    input: [3, 64, 64]          # (C, H, W); build(config, input_size=...) overrides it
    blocks:                     # optional named sub-blocks, reusable by reference
      pair: [{type: conv, out_channels: 8, kernel_size: 3, padding: same}]
    layers:                     # a list of layer specs, each exactly one of:
      - {type: conv, out_channels: 2, kernel_size: 5}     # a registered layer + keywords
      - {block: pair, repeat: 2}                          # a named block
      - {sequential: [...]}                               # an inline group
      - {residual: [...], shortcut: auto, activation: relu}
      - {parallel: [[...], [...]], merge: concat}         # or merge: sum
    init: zeros                 # optional: zeros, ones, normal, xavier or kaiming weights
Every spec may carry ``name`` (the module name in the built model) and ``repeat``.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path
from typing import Any

import yaml

from convzoo.errors import ConvZooError, first_line, render
from convzoo.limits import (
    MAX_CONFIG_BYTES,
    MAX_DEPTH,
    MAX_LAYERS,
    MAX_NAME_CHARS,
    MAX_PARAMS,
    MAX_REPEAT,
    MAX_SIZE,
    MAX_TEXT_CHARS,
    MAX_YAML_NODES,
)
from convzoo.registry import close_matches

__all__ = ["MAX_DEPTH", "MAX_LAYERS", "MAX_PARAMS", "MAX_REPEAT", "ConfigError", "load_config"]

IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
"""Layer, block and design names (matched whole: ``fullmatch``, so no trailing newline)."""

MODEL_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]*")
"""The config's top-level ``name``: identifier-like, also digits first, dots and dashes."""


INITS = ("zeros", "ones", "normal", "xavier", "kaiming")
"""A config's ``init:`` (its real weights re-initialised so; :mod:`convzoo.initcheck.inits`)."""


class ConfigError(ConvZooError):
    """A config problem, located: ``file: layers[3].kernel_size: expected ..., found ...``."""

    def __init__(self, message: str, where: str = "", source: str | None = None) -> None:
        self.message, self.where, self.source = message, where, source
        shown = source if source is None or source.isprintable() else render(source, 200)
        prefix = ": ".join(part for part in (shown, where) if part)
        super().__init__(f"{prefix}: {message}" if prefix else message)

    def located(self, source: str | None) -> ConfigError:
        """The same error with the file it came from."""
        return ConfigError(self.message, self.where, source or self.source)


def child(where: str, key: str | int) -> str:
    """Location of ``key`` inside ``where``: ``layers`` + 3 -> ``layers[3]``."""
    if isinstance(key, int):
        return f"{where}[{key}]"
    text = key if isinstance(key, str) and IDENTIFIER.fullmatch(key) else render(key, 30)
    return f"{where}.{text}" if where else text


def read_config_text(path: Path) -> str:
    """The text of a regular file of at most :data:`MAX_CONFIG_BYTES`, checked before reading:
    directories, devices (``/dev/zero``), FIFOs and sockets are refused, never opened."""
    source = str(path)
    try:
        info = os.stat(path)
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise ConfigError(f"cannot read config: {reason}", source=source) from None
    if not stat.S_ISREG(info.st_mode):
        kind = "a directory" if stat.S_ISDIR(info.st_mode) else "not a regular file"
        raise ConfigError(f"cannot read config: {kind} (a config is a YAML file)", source=source)
    if info.st_size > MAX_CONFIG_BYTES:
        raise ConfigError(
            f"config is {info.st_size:,} bytes, over the limit of {MAX_CONFIG_BYTES:,}",
            source=source,
        )
    try:  # O_NONBLOCK: a file swapped for a FIFO after the check still cannot hang us
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        with os.fdopen(fd, "rb") as handle:
            if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                raise ConfigError("cannot read config: not a regular file", source=source)
            raw = handle.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read config: {exc.strerror or exc}", source=source) from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(f"config is over the limit of {MAX_CONFIG_BYTES:,} bytes", source=source)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError("is not a UTF-8 text file (binary data?)", source=source) from None


def _at(node: yaml.Node) -> str:
    return f"line {node.start_mark.line + 1}, column {node.start_mark.column + 1}"


def check_nodes(root: yaml.Node | None) -> None:
    """Refuse duplicate mapping keys (with their line, column and config path) and more than
    :data:`MAX_YAML_NODES` nodes; each node is visited once, so aliases cost nothing."""
    seen: set[int] = set()
    stack: list[tuple[yaml.Node, str]] = [(root, "")] if root is not None else []
    while stack:
        node, where = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if len(seen) > MAX_YAML_NODES:
            raise ConfigError(f"{_at(node)}: more than {MAX_YAML_NODES:,} YAML nodes", where)
        if isinstance(node, yaml.SequenceNode):
            stack.extend((item, child(where, i)) for i, item in enumerate(node.value))
        elif isinstance(node, yaml.MappingNode):
            first: dict[str, yaml.Node] = {}
            for key, value in node.value:
                text = key.value if isinstance(key, yaml.ScalarNode) else None
                if text is not None and text in first:
                    raise ConfigError(
                        f"{_at(key)}: duplicate key {render(text)} (first at {_at(first[text])})",
                        child(where, text),
                    )
                if text is not None:
                    first[text] = key
                stack.append((key, where))
                stack.append((value, child(where, text) if text is not None else where))


class Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """The safe loader (libyaml's parser when built with it) whose values that Python
    cannot make (an int of 5,000 digits, past Python's int-string limit; a date with month
    13) are located ConfigErrors, not ValueErrors."""

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except ConfigError:
            raise
        except ValueError as exc:
            if node.tag.endswith(":int"):
                digits = sum(c.isdigit() for c in node.value)
                problem = f"an int of {digits:,} digits, over the limit of {MAX_SIZE:,} (MAX_SIZE)"
            else:
                problem = f"cannot read {render(node.value)} as {node.tag}: {first_line(exc)}"
            raise ConfigError(f"{_at(node)}: {problem}") from None


LOADER = Loader
NODE_EVENTS = (yaml.ScalarEvent, yaml.AliasEvent, yaml.SequenceStartEvent, yaml.MappingStartEvent)


def count_nodes(text: str) -> None:
    """Refuse more than :data:`MAX_YAML_NODES` nodes while parsing, before composing any:
    the parse stops at the first node over the limit, so its cost is bounded too."""
    for n, event in enumerate(
        (e for e in yaml.parse(text, Loader=LOADER) if isinstance(e, NODE_EVENTS)), 1
    ):
        if n > MAX_YAML_NODES:
            mark = event.start_mark
            where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
            raise ConfigError(f"{where}more than {MAX_YAML_NODES:,} YAML nodes")


def parse_yaml(text: str) -> Any:
    """YAML text -> Python data with :func:`count_nodes` and :func:`check_nodes` applied
    (safe constructors only)."""
    count_nodes(text)
    loader = LOADER(text)
    try:
        root = loader.get_single_node()
        check_nodes(root)
        return None if root is None else loader.construct_document(root)
    finally:
        loader.dispose()


def load_config(path: str | Path) -> dict[str, Any]:
    """Read a YAML config file into a dict; errors give the file and the line."""
    path = Path(path)
    text = read_config_text(path)
    try:
        data = parse_yaml(text)
    except ConfigError as exc:
        raise exc.located(str(path)) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        problem = " ".join(str(problem).split())[:200]
        raise ConfigError(f"{line}YAML syntax error: {problem}", source=str(path)) from None
    except RecursionError:
        raise ConfigError("YAML nesting is too deep", source=str(path)) from None
    return check_mapping(data, str(path))


def check_mapping(data: object, source: str | None = None) -> dict[str, Any]:
    """Require a non-empty mapping with a ``layers`` list at the top level (or a
    ``compare:`` mapping), with a well-formed ``name``, ``description`` and ``source``."""
    if data is None:
        raise ConfigError("config is empty; expected a mapping with a 'layers' list", "", source)
    if not isinstance(data, dict):
        raise ConfigError(
            f"expected a mapping with a 'layers' list at the top level, found "
            f"{type(data).__name__}",
            "",
            source,
        )
    allowed = {"name", "input", "blocks", "layers", "description", "source", "compare", "init"}
    for key in data:
        if key not in allowed:
            hint = close_matches(key, sorted(allowed), n=1) if isinstance(key, str) else []
            raise ConfigError(
                f"unknown top-level key {render(key)}; expected {', '.join(sorted(allowed))}"
                + (f" (did you mean {hint[0]!r}?)" if hint else ""),
                child("", key) if isinstance(key, (str, int)) else "",
                source,
            )
    if "name" in data:
        check_name(data["name"], "name", MODEL_NAME, source)
    if "init" in data and data["init"] not in INITS:
        hint = close_matches(str(data["init"]), list(INITS), n=1)
        raise ConfigError(
            f"expected one of {', '.join(INITS)}, found {describe(data['init'])}"
            + (f" (did you mean {hint[0]!r}?)" if hint else ""),
            "init",
            source,
        )
    for key in ("description", "source"):
        value = data.get(key)
        if value is not None and (not isinstance(value, str) or len(value) > MAX_TEXT_CHARS):
            raise ConfigError(
                f"expected a text of at most {MAX_TEXT_CHARS:,} characters, found "
                f"{describe(value)}",
                key,
                source,
            )
    if "compare" in data and "layers" not in data:
        return data  # a `convzoo compare` config: design name -> layer list
    if "layers" not in data:
        raise ConfigError("missing the 'layers' list", "", source)
    if not isinstance(data["layers"], list) or not data["layers"]:
        raise ConfigError(
            f"expected a non-empty list of layer specs, found {describe(data['layers'])}",
            "layers",
            source,
        )
    return data


def check_name(
    value: object, where: str, pattern: re.Pattern[str] = IDENTIFIER, source: str | None = None
) -> str:
    """``value`` if it is a name of at most :data:`MAX_NAME_CHARS` characters matching
    ``pattern`` whole (so no newline, escape or space), else a located ConfigError."""
    if not isinstance(value, str) or len(value) > MAX_NAME_CHARS or not pattern.fullmatch(value):
        kind = "an identifier (letters, digits, _)"
        if pattern is MODEL_NAME:
            kind = "a name of letters, digits, _ . + -"
        raise ConfigError(
            f"expected {kind} of at most {MAX_NAME_CHARS} characters, found {describe(value)}",
            where,
            source,
        )
    return value


def describe(value: Any) -> str:
    """Short description of a found value for error messages: ``'abc' (str)``; bounded in
    length and depth whatever the value (see :func:`convzoo.errors.render`)."""
    return f"{render(value)} ({type(value).__name__})"
