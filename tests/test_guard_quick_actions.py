"""GitLab quick actions in the text crewline posts: escaped wherever GitLab could run
them, left alone elsewhere, and still rendered as the same Markdown.

GitLab's extractor (``Gitlab::QuickActions::Extractor``) deletes every ``\\r`` first, then
runs ``/command`` when the slash opens a line (case-insensitive) and the name is followed
by a space or by whitespace (``\\f`` and ``\\v`` included) up to the end of the line. The
guard escapes such lines, and also those GitLab versions differ on or that hide behind
indentation, list or quote markers; only lines inside a backtick fence that every version
skips are left as written.
"""

from __future__ import annotations

import base64
import random
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from markdown_it import MarkdownIt

from forge.guard import QUICK_ACTIONS, Guard, neutralise_quick_actions, quick_actions


@pytest.mark.parametrize("command", sorted(QUICK_ACTIONS))
def test_every_known_command_is_escaped_in_any_case(command: str) -> None:
    text = f"Handing over.\n/{command} @alice ~bug\n/{command.upper()}\n"
    assert neutralise_quick_actions(text) == (
        f"Handing over.\n\\/{command} @alice ~bug\n\\/{command.upper()}\n"
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("/merge", "\\/merge"),
        ("/close\r\nThanks", "\\/close\r\nThanks"),
        ("/approve\t", "\\/approve\t"),
        ("  /assign @me", "  \\/assign @me"),  # GitLab would not run it; escaping is harmless
        ("a\n\n/label ~x ~y\nb", "a\n\n\\/label ~x ~y\nb"),
        # Commands GitLab may add later are escaped too.
        ("/some_future_command now", "\\/some_future_command now"),
        # Tilde fences, unclosed and indented fences ran in older GitLab versions.
        ("~~~\n/merge\n~~~", "~~~\n\\/merge\n~~~"),
        ("```\n/merge\n", "```\n\\/merge\n"),
        (" ```\n/merge\n ```", " ```\n\\/merge\n ```"),
        # A fence CommonMark closes early ("````") leaves the rest outside the code block.
        ("```a\n````\n/merge\n```", "```a\n````\n\\/merge\n```"),
        # GitLab deletes \r before matching and counts \f and \v as whitespace.
        ("\r/merge", "\r\\/merge"),
        ("/\rapprove", "\\/\rapprove"),
        ("/mer\rge now", "\\/mer\rge now"),
        ("/merge\f", "\\/merge\f"),
        ("/approve\v", "\\/approve\v"),
        ("/approve\v\nthanks", "\\/approve\v\nthanks"),
        ("ok\r\n\r/close\r\n", "ok\r\n\r\\/close\r\n"),
        ("\f/merge", "\f\\/merge"),
        ("\v\t /merge", "\v\t \\/merge"),
        # Inside quotes and lists.
        ("> /close", "> \\/close"),
        (">> /merge", ">> \\/merge"),
        ("- /merge", "- \\/merge"),
        ("* item\n  /approve", "* item\n  \\/approve"),
        ("1. /merge", "1. \\/merge"),
        ("> - /merge", "> - \\/merge"),
    ],
)
def test_lines_gitlab_could_run_are_escaped(text: str, expected: str) -> None:
    assert neutralise_quick_actions(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "Use /merge once the pipeline is green.",  # not at line start
        "`/approve` is for humans",
        "```\n/label ~bug\n```",  # a fence every GitLab version skips
        "```python\n/merge\n/approve\n```\nafter",
        "Use\n```\n  /merge\n```",
        "-/merge",  # not a list marker
        "/usr/bin/env python3",  # a path
        "/merge.",  # GitLab needs a space or the end of the line after the name
        "/label~bug",
        "/2024 was a good year",
        "\\/merge",  # already escaped
        "https://gitlab.example.com/merge",
    ],
)
def test_slashes_gitlab_would_not_run_are_left_alone(text: str) -> None:
    assert neutralise_quick_actions(text) == text


def test_neutralised_text_no_longer_triggers_and_escaping_is_idempotent() -> None:
    guard = Guard()
    text = "Done.\n/merge\n/approve\n  /assign @bob\n```\n/label ~x\n```\n> /close\r\n"
    found = [f.rule for f in guard.scan(text)]
    assert found == [
        "quick_action.merge",
        "quick_action.approve",
        "quick_action.assign",
        "quick_action.close",
    ]
    # Quick actions are rewritten, never a reason to refuse the write.
    assert all(not finding.blocking for finding in guard.scan(text))
    once = guard.screen_text(text, where="note.body")
    assert guard.scan(once) == []
    assert guard.screen_text(once, where="note.body") == once


def test_escaped_lines_render_exactly_like_the_original() -> None:
    """``\\/`` is a CommonMark escape: readers see the same note, GitLab runs nothing."""
    markdown = MarkdownIt("commonmark")
    text = (
        'Handoff to review.\n\n/assign_reviewer @alice\n/label ~"workflow::review"\n\n'
        "> quoted\n> /merge\n\n- item\n- /approve\n"
    )
    escaped = neutralise_quick_actions(text)
    assert escaped != text
    assert markdown.render(escaped) == markdown.render(text)


def test_screen_text_returns_the_escaped_text_and_screen_content_never_rewrites() -> None:
    guard = Guard()
    assert guard.screen_text("LGTM\n/approve", where="note.body") == "LGTM\n\\/approve"
    # A file may legitimately hold such a line (a script, a template): content is only checked.
    assert guard.screen_content("#!/bin/sh\n/merge\n", where="commit.content") is None


def test_wrapped_base64_is_not_rewritten() -> None:
    """A 76-column base64 line may start with "/" and hold only letters and digits."""
    blob = base64.b64encode(random.Random(5).randbytes(400_000)).decode()
    lines = [blob[i : i + 76] for i in range(0, len(blob), 76)]
    slash_lines = [line for line in lines if line.startswith("/") and line[1:].isalnum()]
    assert slash_lines  # the hazard is real in data this size
    text = "Attachment:\n```\n" + "\n".join(lines) + "\n```\n"
    assert Guard().screen_text(text, where="note.body") == text


# A model of what GitLab would run, for the property test below. Both extractor
# generations delete "\r" first. A line runs when it is "/name" then a space and
# arguments, or whitespace (Ruby's \s: \f and \v included) to the end of the line, unless
# it lies in a region the extractor skips: a fenced code block for the Markdown-based
# extractor (markdown-it finds those), or for the older regex-based one a column-0
# backtick block closed by a "```" line.
_RUNS = re.compile(r"/[a-z_]+(?: .*|[ \t\f\v]*)", re.IGNORECASE)
_OLD_CODE_BLOCK = re.compile(r"^```.+?\n```$", re.MULTILINE | re.DOTALL)


def _lines_gitlab_would_run(text: str) -> list[str]:
    view = text.replace("\r", "")
    lines = view.split("\n")
    markdown_fences = set()
    for token in MarkdownIt("commonmark").parse(view):
        if token.type == "fence" and token.map:
            markdown_fences.update(range(token.map[0] + 1, token.map[1]))
    old_blocks = set()
    for match in _OLD_CODE_BLOCK.finditer(view):
        first = view.count("\n", 0, match.start())
        old_blocks.update(range(first, first + match.group().count("\n") + 1))
    return [
        line
        for number, line in enumerate(lines)
        if _RUNS.fullmatch(line) and not (number in markdown_fences and number in old_blocks)
    ]


_PIECES = ["/merge", "/approve", "/close x", "\r", "\f", "\v", " ", "\t", "\n", "> ", "- ",
           "1. ", "```", "````", "~~~", "text", "`", "\\"]  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(_PIECES), max_size=30))
def test_no_line_gitlab_would_run_survives_neutralising(pieces: list[str]) -> None:
    text = "".join(pieces)
    assert _lines_gitlab_would_run(neutralise_quick_actions(text)) == []


def test_the_model_sees_the_reported_bypasses() -> None:
    """The model above is not vacuous: it runs the bypasses the issue reported."""
    for text in ("\r/merge", "/\rapprove", "/merge\f", "/approve\v"):
        assert _lines_gitlab_would_run(text) != []


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from([*_PIECES, "/", "a/b", "12) ", "+ ", "* ", "."]), max_size=30))
def test_the_line_start_gate_skips_no_command(pieces: list[str]) -> None:
    """The C-speed check before the lines are split is a necessary condition: with it
    forced open, the same commands are found."""
    text = "".join(pieces)
    gated = list(quick_actions.quick_action_spans(text))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(quick_actions, "_may_hold_command", lambda text: True)
        assert list(quick_actions.quick_action_spans(text)) == gated, text
