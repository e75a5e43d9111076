"""What a host prints on its terminal: a line at a time, coloured when the output is a
terminal (and ``NO_COLOR`` is not set).

`crewline run` and `crewline worker` print a few lines and one per event; rich (which the
demo keeps for its rules and colours) costs 2.4 MB of an idle host's memory for that. Both
this and ``rich.console.Console`` satisfy :class:`Printer`, which the console notifier and
desk (bot/console.py) are written against.

Issue and agent text reaches the terminal through here: every control character but
newline and tab is replaced by ``?``, so no text can move the cursor, rewrite earlier lines
or change the terminal's title.
"""

from __future__ import annotations

import os
import re
import sys
from typing import Any, Protocol, TextIO

_SGR = {
    "bold": "1",
    "red": "31",
    "green": "32",
    "yellow": "33",
    "blue": "34",
    "magenta": "35",
    "cyan": "36",
    "white": "37",
}
# C0 controls but tab and newline, DEL, and the C1 controls (an 8-bit CSI is one of them).
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
RULE_WIDTH = 80


class Printer(Protocol):
    """The part of ``rich.console.Console`` the console surface uses."""

    def print(
        self,
        *objects: Any,
        style: str | None = None,
        markup: bool | None = None,
        highlight: bool | None = None,
    ) -> None: ...

    def rule(self, title: str = "") -> None: ...


def _sgr(style: str) -> str:
    codes = [_SGR[word] for word in style.split() if word in _SGR]
    return f"\x1b[{';'.join(codes)}m" if codes else ""


class PlainConsole:
    """A :class:`Printer` on ``file`` (standard output by default). ``quiet`` prints nothing;
    ``color`` None decides by whether ``file`` is a terminal."""

    def __init__(
        self, file: TextIO | None = None, *, quiet: bool = False, color: bool | None = None
    ) -> None:
        self._file = file
        self._quiet = quiet
        self._color = color

    @property
    def file(self) -> TextIO:
        return self._file if self._file is not None else sys.stdout

    def _colored(self) -> bool:
        if self._color is not None:
            return self._color
        return "NO_COLOR" not in os.environ and self.file.isatty()

    def print(
        self,
        *objects: Any,
        style: str | None = None,
        markup: bool | None = None,  # nothing here is ever markup
        highlight: bool | None = None,  # nor highlighted
    ) -> None:
        if self._quiet:
            return
        text = _CONTROL.sub("?", " ".join(str(item) for item in objects))
        start = _sgr(style) if style and self._colored() else ""
        end = "\x1b[0m" if start else ""
        self.file.write(f"{start}{text}{end}\n")
        self.file.flush()

    def rule(self, title: str = "") -> None:
        shown = f" {title} " if title else ""
        self.print(shown.center(RULE_WIDTH, "-"))
