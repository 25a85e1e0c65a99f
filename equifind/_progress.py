"""Progress of long stages: tqdm bars where someone watches, one line per finished stage elsewhere.

Every progress bar of equifind goes through :func:`progress_bar`. With progress on:

- on a terminal (the stream's ``isatty()``) or in a Jupyter kernel (where ``tqdm.auto`` picks its
  notebook widget), it is the tqdm bar, as before;
- elsewhere (output piped to ``tee``, ``cat`` or a file, a CI log), there is no bar, since each of its
  updates would be a line of the log: a top-level stage (``leave=True``) prints one line when it
  finishes, ``"<desc>: <n> <unit> in <t> s"``, plus the lines its caller gives :meth:`Progress.line`
  (one per step worth a line, e.g. each layer and transform of a scan); a nested bar
  (``leave=False``) prints nothing.

The lines go to the bar's stream (stderr by default) with ``print``, not :mod:`logging`: a caller who
passes ``progress=True`` asked to see them, and logging shows nothing below WARNING until an
application configures it. With progress off nothing is printed.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from types import TracebackType
from typing import Any, Generic, TextIO, TypeVar

T = TypeVar("T")


def interactive(file: TextIO) -> bool:
    """Whether bars drawn on ``file`` are watched: it is a terminal, or this is a Jupyter kernel.

    The kernel test is tqdm's own: :mod:`tqdm.auto` chose its notebook bar over the console one.
    """
    from tqdm import auto

    if auto.notebook_tqdm is not auto.std_tqdm:
        return True
    isatty = getattr(file, "isatty", None)
    return bool(isatty is not None and isatty())


class Progress(Generic[T]):
    """One stage's progress (made by :func:`progress_bar`): a tqdm bar, the lines of a quiet log, or nothing.

    Iterate over it as over its iterable, or call :meth:`update` for a bar made with ``total``
    (then :meth:`close` it, or use it as a context manager).
    """

    def __init__(self, iterable: Iterable[T] | None, *, total: int | None, desc: str, unit: str, enabled: bool,
                 leave: bool, file: TextIO | None) -> None:  # fmt: skip
        self.desc, self.unit = desc, unit
        self._count = 0  # units done (the quiet log's closing line)
        self._iterable = iterable
        self._file = file if file is not None else sys.stderr
        self._bar: Any = None
        self._lines = False  # quiet log: lines instead of a bar
        self._summary = False  # print the closing line
        if enabled and interactive(self._file):
            from tqdm.auto import tqdm

            self._bar = tqdm(iterable, total=total, desc=desc, unit=unit, leave=leave, file=self._file)
        else:
            self._lines = enabled
            self._summary = enabled and leave
        self._start = time.perf_counter()

    def __iter__(self) -> Iterator[T]:
        """The iterable's items (through the bar, if any); a quiet top-level stage's line once they are all done."""
        if self._iterable is None:
            raise TypeError(f"progress {self.desc!r} was made without an iterable: call update() instead")
        if self._bar is not None:
            yield from self._bar
            return
        for item in self._iterable:
            yield item
            self._count += 1
        self.close()

    def __enter__(self) -> Progress[T]:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        """Close the bar; a quiet stage that raised prints no closing line (it did not finish)."""
        if kind is not None:
            self._summary = False
        self.close()

    def update(self, n: int = 1) -> None:
        """``n`` more units done."""
        if self._bar is not None:
            self._bar.update(n)
        else:
            self._count += n

    def set_postfix_str(self, text: str) -> None:
        """What the bar is at now (shown after it; nothing in a quiet log)."""
        if self._bar is not None:
            self._bar.set_postfix_str(text)

    def line(self, text: str) -> None:
        """In a quiet log, print ``"<desc>: <text>"`` (a finished step worth a line); nothing otherwise."""
        if self._lines:
            print(f"{self.desc}: {text}", file=self._file, flush=True)

    def close(self) -> None:
        """Close the bar, or print a quiet top-level stage's one line (once)."""
        if self._bar is not None:
            self._bar.close()
        elif self._summary:
            self._summary = False
            self.line(f"{self._count} {self.unit} in {time.perf_counter() - self._start:.1f} s")


def progress_bar(iterable: Iterable[T] | None = None, *, total: int | None = None, desc: str, unit: str = "it",
                 enabled: bool, leave: bool = True, file: TextIO | None = None) -> Progress[T]:  # fmt: skip
    """A stage's progress, shown as the module doc says.

    Args:
        iterable: what the stage loops over (or None, and :meth:`Progress.update` by hand).
        total: the number of units (default: ``len(iterable)`` where it has one).
        desc: the stage's name, at the start of its bar and lines.
        unit: what is counted ("it", "img", "stage", ...).
        enabled: progress on (the ``progress`` argument of the caller); off: nothing is shown.
        leave: a top-level stage (keeps its bar; one line in a quiet log); False: a nested bar
            (cleared when done; nothing in a quiet log).
        file: the stream (default: ``sys.stderr`` when the bar is made).
    """
    return Progress(iterable, total=total, desc=desc, unit=unit, enabled=enabled, leave=leave, file=file)
