"""A griffe extension for the API reference (mkdocs.yml): convzoo's docstrings are written
for reading in a terminal and in Sphinx's dialect; this turns them into Markdown as they are
loaded, so the site shows what ``help()`` shows.

* Sphinx roles become code: ``:func:`~convzoo.limits.check_size``` -> ```check_size```
  (``~`` keeps the last name), ``:mod:`convzoo.targets``` -> ```convzoo.targets```;
* doctest lines (``>>> ...`` and the output below them, up to a blank line) become a
  fenced ``pycon`` block, which the tests run (tests/test_docs.py).
"""

from __future__ import annotations

import re
from typing import Any

import griffe

ROLE = re.compile(r":(?:func|class|meth|mod|data|attr|exc|obj):`(~?)([^`]+)`")


def markdown(text: str) -> str:
    """``text`` (a docstring) with its roles as code spans and its doctests fenced."""
    text = ROLE.sub(
        lambda m: f"`{m.group(2).rsplit('.', 1)[-1] if m.group(1) else m.group(2)}`", text
    )
    out: list[str] = []
    fenced = False
    for line in text.splitlines():
        if line.lstrip().startswith(">>>") and not fenced:
            out.append("```pycon")
            fenced = True
        elif fenced and not line.strip():
            out.append("```")
            fenced = False
        out.append(line)
    if fenced:
        out.append("```")
    return "\n".join(out)


class Docstrings(griffe.Extension):
    """Rewrite every loaded object's docstring with :func:`markdown`."""

    def on_object(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = markdown(obj.docstring.value)
