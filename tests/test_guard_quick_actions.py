"""GitLab quick actions in the text crewline posts: escaped wherever GitLab could run
them, left alone elsewhere, and still rendered as the same Markdown.

GitLab's extractor runs ``/command`` only when the slash opens a line (case-insensitive),
skipping column-0 backtick fences, HTML blocks and ``>>>`` quotes — but tilde fences,
indented fences and multi-line inline code do run (gitlab-org/gitlab#204774, #24083).
The guard therefore escapes fenced lines as well.
"""

from __future__ import annotations

import base64
import random

import pytest
from markdown_it import MarkdownIt

from forge.guard import QUICK_ACTIONS, Guard, neutralise_quick_actions


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
        # Inside fences: tilde fences run in GitLab, so every fence is escaped alike.
        ("```\n/label ~bug\n```", "```\n\\/label ~bug\n```"),
        ("~~~\n/merge\n~~~", "~~~\n\\/merge\n~~~"),
    ],
)
def test_lines_gitlab_could_run_are_escaped(text: str, expected: str) -> None:
    assert neutralise_quick_actions(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "Use /merge once the pipeline is green.",  # not at line start
        "`/approve` is for humans",
        "> /close",  # a quote: GitLab needs the slash in column 0
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
    text = "Done.\n/merge\n/approve\n  /assign @bob\n```\n/label ~x\n```\n"
    found = [f.rule for f in guard.scan(text)]
    assert found == [
        "quick_action.merge",
        "quick_action.approve",
        "quick_action.assign",
        "quick_action.label",
    ]
    # Quick actions are rewritten, never a reason to refuse the write.
    assert all(not finding.blocking for finding in guard.scan(text))
    once = guard.screen_text(text, where="note.body")
    assert guard.scan(once) == []
    assert guard.screen_text(once, where="note.body") == once


def test_escaped_lines_render_exactly_like_the_original() -> None:
    """``\\/`` is a CommonMark escape: readers see the same note, GitLab runs nothing."""
    markdown = MarkdownIt("commonmark")
    text = 'Handoff to review.\n\n/assign_reviewer @alice\n/label ~"workflow::review"\n'
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
