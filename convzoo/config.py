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
Every spec may carry ``name`` (the module name in the built model) and ``repeat``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from convzoo.errors import ConvZooError
from convzoo.registry import close_matches

MAX_REPEAT = 1000
MAX_DEPTH = 32
MAX_LAYERS = 10_000
MAX_PARAMS = 2_000_000_000  # 8 GB of float32 weights


class ConfigError(ConvZooError):
    """A config problem, located: ``file: layers[3].kernel_size: expected ..., found ...``."""

    def __init__(self, message: str, where: str = "", source: str | None = None) -> None:
        self.message, self.where, self.source = message, where, source
        prefix = ": ".join(part for part in (source, where) if part)
        super().__init__(f"{prefix}: {message}" if prefix else message)

    def located(self, source: str | None) -> ConfigError:
        """The same error with the file it came from."""
        return ConfigError(self.message, self.where, source or self.source)


def child(where: str, key: str | int) -> str:
    """Location of ``key`` inside ``where``: ``layers`` + 3 -> ``layers[3]``."""
    if isinstance(key, int):
        return f"{where}[{key}]"
    return f"{where}.{key}" if where else key


def load_config(path: str | Path) -> dict[str, Any]:
    """Read a YAML config file into a dict; errors give the file and the line."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read config: {exc.strerror or exc}", source=str(path)) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError("is not a UTF-8 text file (binary data?)", source=str(path)) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{line}YAML syntax error: {problem}", source=str(path)) from None
    except RecursionError:
        raise ConfigError("YAML nesting is too deep", source=str(path)) from None
    return check_mapping(data, str(path))


def check_mapping(data: object, source: str | None = None) -> dict[str, Any]:
    """Require a non-empty mapping with a ``layers`` list at the top level."""
    if data is None:
        raise ConfigError("config is empty; expected a mapping with a 'layers' list", "", source)
    if not isinstance(data, dict):
        raise ConfigError(
            f"expected a mapping with a 'layers' list at the top level, found "
            f"{type(data).__name__}",
            "",
            source,
        )
    allowed = {"name", "input", "blocks", "layers", "description", "source", "compare"}
    for key in data:
        if key not in allowed:
            hint = close_matches(str(key), sorted(allowed), n=1)
            raise ConfigError(
                f"unknown top-level key {key!r}; expected {', '.join(sorted(allowed))}"
                + (f" (did you mean {hint[0]!r}?)" if hint else ""),
                str(key),
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


def describe(value: Any) -> str:
    """Short description of a found value for error messages: ``'abc' (str)``."""
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{text} ({type(value).__name__})"
