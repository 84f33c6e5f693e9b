"""What the prose of the README and docs/ claims about the code, checked against it.

:func:`problems` reads a Markdown text and returns one line per claim the code does not
back:

* a command-line flag (``--something``) must exist: in the command it is written after
  (``rf --unit``, or anywhere in a code span that starts ``convzoo rf``), else in one of the
  commands the sentence names (``convzoo report``), else in some command; a flag of a
  script (``scripts/NAME.py``) or of pytest or mkdocs counts when its paragraph names that
  script or tool. A value written after a flag with choices (``--format json|csv``,
  ``--category conv``) must be among them;
* a layer or block name in ``type: NAME`` or ``create("NAME"`` must be registered;
* a keyword written ``name=`` must be a parameter of a function the sentence names
  (``convzoo.analyze``, ``register_op``, ...), else of some public function or registered
  layer.

Fenced blocks are left out, but for the layer names of YAML blocks: the console and Python
examples are run (tests/test_docs.py), and show mistakes on purpose.
"""

from __future__ import annotations

import argparse
import inspect
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)
FLAG = re.compile(r"--[a-z][a-z0-9-]*")
CODE = re.compile(r"(?<!`)(`+)(?!`)(.+?)(?<!`)\1(?!`)", re.S)
"""A code span: its opening run of backticks, its text, the same run closing it."""
EXTERNAL = {"pytest": {"--durations"}, "mkdocs": {"--strict", "--site-dir"}}
"""Flags of other tools that the docs name, by the tool a paragraph must name with them."""


@dataclass(frozen=True)
class Command:
    """One ``convzoo`` sub-command: its option strings and the choices of each."""

    options: frozenset[str]
    choices: dict[str, tuple[str, ...]]


@cache
def commands() -> dict[str, Command]:
    """Every sub-command of ``convzoo`` by name, each with the top-level options too."""
    from convzoo.cli_parser import parser

    top = parser()
    subs = next(a for a in top._actions if isinstance(a, argparse._SubParsersAction))

    def command(p: argparse.ArgumentParser, *extra: argparse.ArgumentParser) -> Command:
        actions = {k: v for q in (p, *extra) for k, v in q._option_string_actions.items()}
        choices = {k: tuple(map(str, a.choices)) for k, a in actions.items() if a.choices}
        return Command(frozenset(actions), choices)

    return {name: command(p, top) for name, p in subs.choices.items()}


@cache
def layer_names() -> frozenset[str]:
    from convzoo.catalogue import shipped

    return frozenset(row.name for row in shipped().entries())


@cache
def functions() -> dict[str, Callable]:
    """The functions whose keywords the docs name, by the names the docs call them."""
    import convzoo
    from convzoo import compare
    from convzoo.analysis.report_types import ReceptiveField

    public = {name: getattr(convzoo, name) for name in convzoo.__all__ if name != "__version__"}
    found = {name: f for name, f in public.items() if inspect.isfunction(f)}
    found.update(compare=compare.compare, compare_upsample=compare.compare_upsample)
    found.update(  # a report's public methods, as the docs call them: report.top(...)
        (f"report.{name}", method)
        for name, method in vars(convzoo.Report).items()
        if inspect.isfunction(method) and not name.startswith("_")
    )
    found["receptive_field.unit"] = ReceptiveField.unit  # a layer's field: field.unit(i, j)
    return found


def keywords(function: Callable) -> set[str]:
    """The keywords ``function`` takes; those of every layer for one that passes
    ``**kwargs`` on to a layer (``create``)."""
    parameters = inspect.signature(function).parameters.values()
    found = {p.name for p in parameters if p.kind is not p.VAR_KEYWORD}
    if any(p.kind is p.VAR_KEYWORD for p in parameters):
        found |= layer_keywords()
    return found


@cache
def layer_keywords() -> frozenset[str]:
    from convzoo.registry import LAYERS

    return frozenset(k for e in LAYERS.entries() for k in LAYERS.get(e.name).keywords())


def paragraphs(text: str) -> Iterator[str]:
    """The prose of ``text`` (fenced blocks left out), one paragraph, list item or table
    row at a time."""
    prose = FENCE.sub("\n\n", text)
    for block in re.split(r"\n\s*\n", prose):
        yield from (p for p in re.split(r"\n(?=\s*- |\s*\d+\. |\|)", block) if p.strip())


def sentences(paragraph: str) -> list[str]:
    """A paragraph cut at each full stop that ends a sentence (not inside a code span)."""
    out, start, fence = [], 0, ""
    for found in re.finditer(r"`+|[.;](?=\s|$)", paragraph):
        mark = found.group()
        if mark.startswith("`"):
            fence = "" if mark == fence else fence or mark  # a span closes with its opener
        elif not fence:
            out.append(paragraph[start : found.end()])
            start = found.end()
    return [s for s in (*out, paragraph[start:]) if s.strip()]


def named_commands(sentence: str) -> set[str]:
    """The sub-commands a sentence names: ``convzoo rf``, or ``rf --unit``."""
    names = "|".join(commands())
    return set(re.findall(rf"\bconvzoo ({names})\b", sentence)) | set(
        re.findall(rf"(?<![\w.-])({names}) --", sentence)
    )


def flags_in(sentence: str) -> Iterator[tuple[str, str | None, str]]:
    """``(flag, bound command or None, the word after it)`` for each flag of a sentence."""
    names = set(commands())
    spans = [m.group(2) for m in CODE.finditer(sentence)] + [CODE.sub(" ", sentence)]
    for span in spans:
        words = re.findall(r"\S+", span)
        starts = re.match(r"convzoo (\w+)", span)
        whole = starts.group(1) if starts and starts.group(1) in names else None
        bound = None
        for i, word in enumerate(words):
            following = words[i + 1] if i + 1 < len(words) else ""
            after_tool = i > 0 and words[i - 1] in EXTERNAL  # mkdocs build --strict
            if word in names and FLAG.match(following) and not after_tool:
                bound = word
                continue
            bare = word.strip("[](),;:.'\"").split("=")[0]
            parts = [p for p in bare.split("/") if FLAG.fullmatch(p)]
            if not parts:
                bound = None if not FLAG.match(words[i - 1] if i else "") else bound
                continue
            for flag in parts:
                value = "" if FLAG.match(following) else following.strip("[](),;:.'\"")
                yield flag, whole or bound, value


def flag_problems(sentence: str, paragraph: str) -> Iterator[str]:
    table = commands()
    scripts = [ROOT / s for s in re.findall(r"scripts/\w+\.py", paragraph) if (ROOT / s).exists()]
    outside = set().union(*(flags for tool, flags in EXTERNAL.items() if tool in paragraph))
    for flag, bound, value in flags_in(sentence):
        candidates = [bound] if bound else sorted(named_commands(sentence)) or sorted(table)
        having = [table[c] for c in candidates if flag in table[c].options]
        if not having:
            elsewhere = not bound and (
                flag in outside
                or any(re.search(rf"[\"']{flag}[\"']", s.read_text()) for s in scripts)
            )
            if not elsewhere:
                where = f"convzoo {bound}" if bound else " or ".join(candidates)
                yield f"{flag}: no such flag in {where}"
            continue
        choices = {c for command in having for c in command.choices.get(flag, ())}
        if choices and re.fullmatch(r"[a-z0-9_-]+(\|[a-z0-9_-]+)*", value):
            for one in value.split("|"):
                if one not in choices:
                    yield f"{flag} {one}: not one of {', '.join(sorted(choices))}"


def keyword_problems(sentence: str) -> Iterator[str]:
    named = [f for name, f in functions().items() if re.search(rf"\b{name}\b", sentence)]
    for span in (m.group(2) for m in CODE.finditer(sentence)):
        for word in re.findall(r"(?<![\w.-])([a-z_][a-z0-9_]*)=(?!=)", span):
            if named:
                if not any(word in keywords(f) for f in named):
                    yield f"{word}=: not a keyword of {', '.join(f.__name__ for f in named)}"
            elif word not in layer_keywords() and not any(
                word in keywords(f) for f in functions().values()
            ):
                yield f"{word}=: not a keyword of any public function or layer"


def name_problems(text: str) -> Iterator[str]:
    """Unregistered names in the prose and the YAML blocks (Python and console blocks run:
    their mistakes are on purpose)."""
    text = FENCE.sub(lambda m: "" if m.group(1) in ("python", "console") else m.group(0), text)
    for name in re.findall(r"\btype: ([a-z_][a-z0-9_]*)|create\(\"(\w+)\"", text):
        name = "".join(name)
        if name not in layer_names():
            yield f"{name}: no such registered layer or block"


def problems(text: str) -> list[str]:
    """Every claim of ``text`` that the code does not back, one line each."""
    found = list(name_problems(text))
    for paragraph in paragraphs(text):
        for sentence in sentences(paragraph):
            found += flag_problems(sentence, paragraph)
            found += keyword_problems(sentence)
    return found
