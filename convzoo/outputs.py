"""The files convzoo writes (``report --output``, ``compare --plot``, ``rf --plot``): one rule
for all of them, checked before any work, and a write that can neither hang nor clobber.

A path is refused when it is a directory, a FIFO, a socket or a device, or a symbolic link
to one of them (or to nothing); when it is one of the files the command reads (its config,
the Python file of its target), even with ``force``; when it is an existing file, unless
``force``; and when its directory is missing or not writable. No torch is imported here, so
a refused path costs milliseconds.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from convzoo.errors import ConvZooError, render

KINDS: dict[Callable[[int], bool], str] = {
    stat.S_ISDIR: "a directory",
    stat.S_ISFIFO: "a FIFO (a named pipe)",
    stat.S_ISSOCK: "a socket",
    stat.S_ISCHR: "a character device",
    stat.S_ISBLK: "a block device",
}
"""What a path that is not a regular file is, by the ``stat`` predicate that recognises it."""


def kind(path: str | Path) -> str | None:
    """What ``path`` is when it cannot be written as a file (``"a directory"``, ``"a symbolic
    link to a FIFO (a named pipe)"``, ...); None for a regular file or nothing at all."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return None
    link = stat.S_ISLNK(mode)
    if link:
        try:
            mode = os.stat(path).st_mode
        except FileNotFoundError:
            return "a symbolic link to nothing"
    if stat.S_ISREG(mode):
        return None
    what = next((name for test, name in KINDS.items() if test(mode)), "not a regular file")
    return f"a symbolic link to {what}" if link else what


def writable(
    path: str | Path, force: bool = False, inputs: Iterable[str | Path] = (), what: str = ""
) -> Path:
    """``path`` checked before any work, for a file a command will write (``what``, e.g.
    ``"the report"``): see the module's rule. Returns it as a :class:`~pathlib.Path`."""
    text = str(path)
    where = f"cannot write {what or 'a file'} to {render(text)}"
    try:
        found = kind(path)
        if found is not None:
            raise ConvZooError(f"{where}: it is {found}")
        if text.endswith(("/", os.sep)):
            raise ConvZooError(f"{where}: a file name cannot end in {text[-1]}")
        exists = os.path.exists(path)
        for source in inputs:
            if exists and os.path.exists(source) and os.path.samefile(path, source):
                raise ConvZooError(
                    f"{where}: it is {render(str(source), 200)}, which the command reads "
                    "(never overwritten, even with --force)"
                )
    except OSError as exc:  # a loop of links, a directory it may not search
        raise ConvZooError(f"{where}: {exc.strerror or exc}") from None
    parent = Path(path).parent
    if not parent.is_dir():
        raise ConvZooError(f"{where}: no directory {render(str(parent))}")
    if not os.access(parent, os.W_OK):
        raise ConvZooError(f"{where}: the directory {render(str(parent))} is not writable")
    if exists and not force:
        raise ConvZooError(f"{render(text)} exists; pass --force (force=True) to overwrite it")
    return Path(path)


@contextmanager
def created(path: str | Path, force: bool = False, binary: bool = False) -> Iterator[IO]:
    """``path`` opened for writing as a regular file, never blocking: a FIFO or device that
    appeared since :func:`writable` is refused, not waited on, and without ``force`` a file
    that appeared meanwhile is kept. One-line errors."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if force else os.O_EXCL)
    flags |= getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
    try:
        fd = os.open(path, flags, 0o666)
    except OSError as exc:
        raise ConvZooError(f"cannot write {render(str(path))}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise ConvZooError(f"cannot write {render(str(path))}: it is not a regular file")
    try:
        with os.fdopen(fd, "wb" if binary else "w", encoding=None if binary else "utf-8") as file:
            yield file
    except OSError as exc:  # a full disk, a quota
        raise ConvZooError(f"cannot write {render(str(path))}: {exc.strerror or exc}") from None
