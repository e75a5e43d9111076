"""Safe rendering: untrusted text never pings, never escapes its place in the markdown,
and is cut to Discord's limits with a link to GitLab."""

from __future__ import annotations

import discord

from bot.discord.cards import board_embed, gate_card
from bot.discord.render import (
    EMBED_DESCRIPTION,
    EMBED_TITLE,
    ZWSP,
    block,
    cut,
    link,
    plain,
    strip_details,
)
from bot.status import Board, BoardItem
from roles.notify import GateRequest
from roles.pm.plan import Plan

URL = "https://gitlab.example.com/g/app/-/issues/7"


def test_plain_escapes_markdown_mentions_and_line_starts() -> None:
    hostile = "# Big\n> quote **bold** __u__ `x` ||spoiler|| [click](http://evil) @everyone <@12> <@&3> <#4>"
    shown = plain(hostile, 500)
    assert "\n" not in shown
    assert shown.startswith("\\# Big > quote \\*\\*bold\\*\\* \\_\\_u\\_\\_ \\`x\\` \\|\\|spoiler")
    assert "\\[click\\](http://evil)" in shown
    assert f"@{ZWSP}everyone <{ZWSP}@12> <{ZWSP}@&3> <{ZWSP}#4>" in shown


def test_cuts_keep_within_limits_and_link_to_gitlab() -> None:
    long = "word " * 1000
    shown = plain(long, 100, URL)
    assert len(shown) <= 100 and shown.endswith(f"… [more in GitLab]({URL})")
    assert len(cut("x" * 50, 10)) == 10
    assert plain("a" * 9 + "*", 10).endswith("…") and "\\…" not in plain("a" * 9 + "*", 10)
    assert link("Open", "javascript:alert(1)") == "Open"
    assert link("Op]en", URL) == f"[Op\\]en]({URL})"


def test_block_cannot_be_closed_from_inside() -> None:
    text = "before\n```\n**now outside** @here\n```"
    shown = block(text, 1000)
    assert shown.startswith("```\n") and shown.endswith("\n```")
    assert shown.count("```") == 2 and f"@{ZWSP}here" in shown
    cut_short = block("line\n" * 2000, 300, URL)
    assert len(cut_short) <= 300 and cut_short.count("```") == 2
    assert cut_short.endswith(f"\n[more in GitLab]({URL})")


def test_gate_card_of_a_hostile_plan_stays_within_limits() -> None:
    hostile = Plan(
        summary="**Take over** @everyone ```",
        steps=["x" * 1000] * 9,
        acceptance=["true"],
        owned_paths=["**"],
    )
    summary = hostile.to_markdown()
    gate = GateRequest("g/app", 7, "T" * 400 + " <@1>", "plan-review", "99", summary, URL, "alice")
    embed = gate_card(gate, "plan", 1.5)
    assert (
        len(embed.title or "") <= EMBED_TITLE and len(embed.description or "") <= EMBED_DESCRIPTION
    )
    assert len(embed) <= 6000 and embed.url == URL
    assert (embed.description or "").count("```") == 2 and "plan.json" not in (
        embed.description or ""
    )
    assert [(f.name, f.value) for f in embed.fields] == [
        ("Revision", "plan note 99"),
        ("Cost so far", "$1.50"),
        ("Filed by", "@alice"),
    ]
    assert strip_details("a<details>secret\njson</details>b") == "ab"


def test_board_embed_of_many_items_is_counted_not_overflowing() -> None:
    items = [
        BoardItem("g/app", n, f"Item {n} `x`", "dev-ready", "wait: reason") for n in range(1, 60)
    ]
    embed = board_embed(Board({"dev-ready": 59}, items))
    assert isinstance(embed, discord.Embed) and len(embed) <= 6000
    assert (embed.description or "").endswith("… and 34 more")
    assert "`g/app#1` dev-ready: Item 1 \\`x\\` (wait: reason)" in (embed.description or "")
