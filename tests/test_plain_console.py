"""What a host prints on its terminal (bot/plain_console.py): one line per print, colour
only when asked or on a terminal, and no control character from issue or agent text."""

from __future__ import annotations

import io

from bot.plain_console import PlainConsole


def test_text_cannot_drive_the_terminal() -> None:
    out = io.StringIO()
    hostile = "title\x1b]0;pwned\x07 \x1b[2J\rover\x08written \x9b31m and\ttab\nnext"
    PlainConsole(out).print(hostile, style="red")
    assert out.getvalue() == "title?]0;pwned? ?[2J?over?written ?31m and\ttab\nnext\n"


def test_colour_when_asked_none_when_not_and_quiet_prints_nothing() -> None:
    coloured = io.StringIO()
    PlainConsole(coloured, color=True).print("WARNING: x", style="bold red")
    assert coloured.getvalue() == "\x1b[1;31mWARNING: x\x1b[0m\n"
    plain = io.StringIO()  # not a terminal: no colour unless asked
    PlainConsole(plain).print("a", "b", style="bold red")
    assert plain.getvalue() == "a b\n"
    quiet = io.StringIO()
    PlainConsole(quiet, quiet=True).print("anything")
    PlainConsole(quiet, quiet=True).rule("a gate")
    assert quiet.getvalue() == ""


def test_a_rule_is_one_line_with_its_title() -> None:
    out = io.StringIO()
    PlainConsole(out).rule("Plan of demo/app#1")
    line = out.getvalue()
    assert line.endswith("\n") and line.count("\n") == 1
    assert " Plan of demo/app#1 " in line and line.startswith("-") and len(line) == 81
