"""Issue discussions (``/issues/:iid/discussions``): threads of issue notes, and replies to
them. A plain note is a discussion of one (``individual_note``); replying to it makes it a
thread, as GitLab's "Reply" on a comment does."""

from __future__ import annotations

import sqlite3

from aiohttp import web

from sim.core.base import API, GUEST, SIM_KEY, Sim, current_user, load_project
from sim.core.http import Params, created, not_found, paginate
from sim.issues.note_json import note_json
from sim.issues.noteables import Noteable, load_noteable
from sim.issues.notes import create_note, list_notes
from sim.merge_requests.discussions import discussion_json, group_discussions


async def _issue(request: web.Request) -> tuple[Sim, sqlite3.Row, Noteable]:
    sim = request.app[SIM_KEY]
    project = await load_project(request, GUEST)
    issue = await load_noteable(sim, project, "Issue", int(request.match_info["iid"]))
    if issue is None:
        not_found()
    return sim, project, issue


async def list_discussions(request: web.Request) -> web.Response:
    sim, _, issue = await _issue(request)
    groups = group_discussions(await list_notes(sim, "Issue", issue.id))
    return paginate(request, [await discussion_json(sim, k, rows) for k, rows in groups.items()])


async def _thread(request: web.Request) -> tuple[Sim, sqlite3.Row, Noteable, list[sqlite3.Row]]:
    sim, project, issue = await _issue(request)
    wanted = request.match_info["discussion_id"]
    rows = [r for r in await list_notes(sim, "Issue", issue.id) if r["discussion_id"] == wanted]
    if not rows:
        not_found("Discussion Not Found")
    return sim, project, issue, rows


async def get_discussion(request: web.Request) -> web.Response:
    sim, _, _, rows = await _thread(request)
    return web.json_response(await discussion_json(sim, str(rows[0]["discussion_id"]), rows))


async def reply(request: web.Request) -> web.Response:
    sim, project, issue, rows = await _thread(request)
    body = (await Params.of(request)).required("body")
    row = await create_note(
        sim, project, "Issue", issue.iid, current_user(request), body,
        discussion_id=str(rows[0]["discussion_id"]), note_type="DiscussionNote",
    )  # fmt: skip
    return created(await note_json(sim, row))


def setup(app: web.Application, sim: Sim) -> None:
    discussions = f"{API}/projects/{{id}}/issues/{{iid:\\d+}}/discussions"
    one = f"{discussions}/{{discussion_id:[0-9a-f]{{40}}}}"
    app.router.add_get(discussions, list_discussions)
    app.router.add_get(one, get_discussion)
    app.router.add_post(f"{one}/notes", reply)
