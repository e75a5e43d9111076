"""The identity map and GitLab access levels: mapped users only, levels from the GitLab API
(the simulator's members endpoint), cached for a while, approver roles narrowing decisions."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.identity import Actor, Identities, Need, NotAllowed
from sim.core.app import RunningSim
from tests.support.desk import ALICE, APPROVER, BOB, NOBODY, RITA, actor, desk_for, discord_settings
from tests.support.engine import PROJECT


class CountingLevels:
    def __init__(self, levels: dict[str, int]) -> None:
        self.levels = levels
        self.calls: list[tuple[str, str]] = []

    async def __call__(self, project: str, username: str) -> int:
        self.calls.append((project, username))
        return self.levels.get(username, 0)


async def test_levels_are_cached_for_the_configured_time() -> None:
    now = [0.0]
    levels = CountingLevels({"alice": 30})
    identities = Identities(discord_settings(access_cache_seconds=60), levels, clock=lambda: now[0])
    await identities.require(actor(ALICE), [PROJECT], Need.WRITE)
    await identities.require(actor(ALICE), [PROJECT], Need.DECIDE)
    assert levels.calls == [(PROJECT, "alice")]
    levels.levels["alice"] = 10  # demoted in GitLab
    now[0] = 61.0
    with pytest.raises(NotAllowed, match="@alice has Guest access to demo/app"):
        await identities.require(actor(ALICE), [PROJECT], Need.WRITE)
    assert len(levels.calls) == 2


async def test_needs_and_roles() -> None:
    identities = Identities(discord_settings(), CountingLevels({"alice": 30, "rita": 20}))
    await identities.require(actor(RITA), [PROJECT], Need.READ)
    with pytest.raises(NotAllowed, match="needs Developer or more"):
        await identities.require(actor(RITA), [PROJECT], Need.WRITE)
    await identities.require(actor(ALICE, approver=False), [PROJECT], Need.WRITE)
    with pytest.raises(NotAllowed, match="approver roles"):
        await identities.require(actor(ALICE, approver=False), [PROJECT], Need.DECIDE)
    stranger = Actor(NOBODY, "stranger", frozenset({APPROVER}))
    with pytest.raises(NotAllowed, match="not mapped to a GitLab user"):
        await identities.require(stranger, [PROJECT], Need.READ)
    assert identities.discord_ids("alice") == [ALICE] and identities.discord_ids("zed") == []


async def test_access_levels_come_from_gitlab(sim: RunningSim, tmp_path: Path) -> None:
    async with desk_for(sim, tmp_path) as (desk, runtime):
        gateway = runtime.services.gateway
        assert await gateway.member_access_level(PROJECT, "alice") == 30
        assert await gateway.member_access_level(PROJECT, "bob") == 40
        assert await gateway.member_access_level(PROJECT, "root") == 50  # an administrator
        assert await gateway.member_access_level(PROJECT, "nobody-here") == 0
        person, visible = await desk.identities.visible(actor(BOB), [PROJECT])
        assert person.gitlab_user == "bob" and visible == [PROJECT]
        entries = await runtime.storage.audit.for_target(PROJECT, limit=20)
        assert "gitlab.member.access_level" in {entry.what for entry in entries}
