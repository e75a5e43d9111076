"""Project webhooks: the ``/projects/:id/hooks`` API (Maintainer+) and their delivery.

Delivery subscribes to the event bus (issue, note, merge_request, pipeline, push,
tag_push, job) and POSTs each payload to every hook of the project that wants that kind,
concurrently and in the background. Headers follow GitLab: ``X-Gitlab-Event``,
``X-Gitlab-Token`` (when the hook has one), ``X-Gitlab-Event-UUID`` and ``Idempotency-Key``
(both the same on every retry), ``X-Gitlab-Webhook-UUID``, ``X-Gitlab-Instance``,
``User-Agent: GitLab/17.5.0``. A connection error or a non-2xx answer is retried up to
``config.hook_retries`` times, waiting ``hook_retry_delay * 2**n`` seconds. (GitLab itself
does not retry; the simulator does so reliability tests can watch a retry happen.)

Every delivery is recorded in ``hook_deliveries``; administrators read them at
``GET /api/v4/_sim/hook_deliveries`` (optional ``hook_id``, ``project_id``, ``event_uuid``
filters, paginated), each item ``{id, hook_id, project_id, event_kind, event_uuid, url,
attempts, status, outcome, error, created_at, updated_at}`` where ``status`` is the last
HTTP status (null after a connection error) and ``outcome`` is pending|delivered|failed.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import uuid
from typing import Any

import aiohttp
from aiohttp import web

from sim.core.base import API, MAINTAINER, SIM_KEY, Sim, current_user, load_project
from sim.core.events import SimEvent
from sim.core.http import (
    Params,
    created,
    fail,
    forbidden,
    no_content,
    not_found,
    now_iso,
    paginate,
)

log = logging.getLogger(__name__)

# event kind -> (the hook's flag column, X-Gitlab-Event)
EVENT_KINDS: dict[str, tuple[str, str]] = {
    "issue": ("issues_events", "Issue Hook"),
    "note": ("note_events", "Note Hook"),
    "merge_request": ("merge_requests_events", "Merge Request Hook"),
    "pipeline": ("pipeline_events", "Pipeline Hook"),
    "push": ("push_events", "Push Hook"),
    "tag_push": ("tag_push_events", "Tag Push Hook"),
    "job": ("job_events", "Job Hook"),
    "emoji": ("emoji_events", "Emoji Hook"),
}
# flag -> default when creating a hook (GitLab subscribes new hooks to pushes only)
FLAGS: dict[str, bool] = {
    "push_events": True,
    "issues_events": False,
    "confidential_issues_events": False,
    "merge_requests_events": False,
    "tag_push_events": False,
    "note_events": False,
    "confidential_note_events": False,
    "job_events": False,
    "pipeline_events": False,
    "wiki_page_events": False,
    "deployment_events": False,
    "releases_events": False,
    "emoji_events": False,
    "enable_ssl_verification": True,
}
USER_AGENT = "GitLab/17.5.0"

SCHEMA = """
CREATE TABLE IF NOT EXISTS hooks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id INTEGER NOT NULL REFERENCES projects(id),
    url TEXT NOT NULL,
    token TEXT,
    name TEXT,
    description TEXT,
    flags TEXT NOT NULL,
    push_events_branch_filter TEXT,
    uuid TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS hook_deliveries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    hook_id INTEGER NOT NULL,
    project_id INTEGER NOT NULL,
    event_kind TEXT NOT NULL,
    event_uuid TEXT NOT NULL,
    url TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    status INTEGER,
    outcome TEXT NOT NULL DEFAULT 'pending',
    error TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
)
"""


def hook_json(row: sqlite3.Row) -> dict[str, Any]:
    return {
        "id": row["id"],
        "url": row["url"],
        "name": row["name"],
        "description": row["description"],
        "project_id": row["project_id"],
        **json.loads(row["flags"]),
        "push_events_branch_filter": row["push_events_branch_filter"],
        "repository_update_events": False,
        "alert_status": "executable",
        "disabled_until": None,
        "url_variables": [],
        "custom_webhook_template": None,
        "custom_headers": [],
        "created_at": row["created_at"],
    }


def _url(params: Params) -> str:
    url = params.required("url")
    if not url.startswith(("http://", "https://")):
        fail(400, {"url": ["is blocked: Only allowed schemes are http, https"]})
    return url


def _flags(params: Params, current: dict[str, bool]) -> dict[str, bool]:
    return {name: params.get_bool(name, current[name]) for name in FLAGS}


async def _hook_or_404(sim: Sim, project: sqlite3.Row, request: web.Request) -> sqlite3.Row:
    row = await sim.store.fetchone(
        "SELECT * FROM hooks WHERE id = ? AND project_id = ?",
        (int(request.match_info["hook_id"]), project["id"]),
    )
    if row is None:
        not_found()
    return row


async def list_hooks(request: web.Request) -> web.Response:
    sim = request.app[SIM_KEY]
    project = await load_project(request, MAINTAINER)
    rows = await sim.store.fetchall(
        "SELECT * FROM hooks WHERE project_id = ? ORDER BY id", (project["id"],)
    )
    return paginate(request, [hook_json(row) for row in rows])


async def get_hook(request: web.Request) -> web.Response:
    sim = request.app[SIM_KEY]
    project = await load_project(request, MAINTAINER)
    return web.json_response(hook_json(await _hook_or_404(sim, project, request)))


async def add_hook(request: web.Request) -> web.Response:
    sim = request.app[SIM_KEY]
    project = await load_project(request, MAINTAINER)
    params = await Params.of(request)
    async with sim.store.write() as conn:
        cur = await conn.execute(
            "INSERT INTO hooks (project_id, url, token, name, description, flags,"
            " push_events_branch_filter, uuid, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING *",
            (
                project["id"],
                _url(params),
                params.get_str("token"),
                params.get_str("name"),
                params.get_str("description"),
                json.dumps(_flags(params, FLAGS)),
                params.get_str("push_events_branch_filter"),
                str(uuid.uuid4()),
                now_iso(),
            ),
        )
        row = await cur.fetchone()
    assert row is not None
    return created(hook_json(row))


async def edit_hook(request: web.Request) -> web.Response:
    sim = request.app[SIM_KEY]
    project = await load_project(request, MAINTAINER)
    row = await _hook_or_404(sim, project, request)
    params = await Params.of(request)
    async with sim.store.write() as conn:
        cur = await conn.execute(
            "UPDATE hooks SET url = ?, token = ?, name = ?, description = ?, flags = ?,"
            " push_events_branch_filter = ? WHERE id = ? RETURNING *",
            (
                _url(params) if params.has("url") else row["url"],
                params.get_str("token") if params.has("token") else row["token"],
                params.get_str("name", row["name"]),
                params.get_str("description", row["description"]),
                json.dumps(_flags(params, json.loads(row["flags"]))),
                params.get_str("push_events_branch_filter", row["push_events_branch_filter"]),
                row["id"],
            ),
        )
        updated = await cur.fetchone()
    assert updated is not None
    return web.json_response(hook_json(updated))


async def delete_hook(request: web.Request) -> web.Response:
    sim = request.app[SIM_KEY]
    project = await load_project(request, MAINTAINER)
    row = await _hook_or_404(sim, project, request)
    async with sim.store.write() as conn:
        await conn.execute("DELETE FROM hooks WHERE id = ?", (row["id"],))
    return no_content()


async def list_deliveries(request: web.Request) -> web.Response:
    sim = request.app[SIM_KEY]
    if not current_user(request)["is_admin"]:
        forbidden()
    params = await Params.of(request)
    clauses, values = [], []
    for name in ("hook_id", "project_id", "event_uuid"):
        value = params.get_str(name)
        if value is not None:
            clauses.append(f"{name} = ?")
            values.append(value)
    where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
    rows = await sim.store.fetchall(f"SELECT * FROM hook_deliveries{where} ORDER BY id", values)
    return paginate(request, [dict(row) for row in rows])


# ---------------------------------------------------------------- delivery


class Deliverer:
    """Sends event payloads to the project's hooks, recording every delivery."""

    def __init__(self, sim: Sim) -> None:
        self._sim = sim
        self._session: aiohttp.ClientSession | None = None

    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        return self._session

    async def close(self, _: web.Application) -> None:
        await self._sim.events.drain()  # let retries in flight finish before the session goes
        if self._session is not None:
            await self._session.close()

    async def on_event(self, event: SimEvent) -> None:
        flag, _ = EVENT_KINDS[event.kind]
        rows = await self._sim.store.fetchall(
            "SELECT * FROM hooks WHERE project_id = ? ORDER BY id", (event.project_id,)
        )
        wanted = [row for row in rows if _wants(row, flag, event)]
        await asyncio.gather(*(self.deliver(row, event) for row in wanted))

    async def deliver(self, hook: sqlite3.Row, event: SimEvent) -> None:
        event_uuid = str(uuid.uuid4())
        _, header = EVENT_KINDS[event.kind]
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "X-Gitlab-Event": header,
            "X-Gitlab-Event-UUID": event_uuid,
            "Idempotency-Key": event_uuid,
            "X-Gitlab-Webhook-UUID": hook["uuid"],
            "X-Gitlab-Instance": self._sim.base_url,
        }
        if hook["token"]:
            headers["X-Gitlab-Token"] = hook["token"]
        delivery_id = await self._record_start(hook, event, event_uuid)
        body = json.dumps(event.payload)
        retries = max(0, self._sim.config.hook_retries)
        for attempt in range(1, retries + 2):
            status, error = await self._post(hook["url"], body, headers)
            ok = status is not None and 200 <= status < 300
            final = ok or attempt > retries
            outcome = "delivered" if ok else "failed" if final else "pending"
            await self._record_attempt(delivery_id, attempt, status, error, outcome)
            if final:
                if not ok:
                    log.warning(
                        "webhook delivery failed: hook=%s kind=%s uuid=%s status=%s error=%s",
                        hook["id"], event.kind, event_uuid, status, error,
                    )  # fmt: skip
                return
            await asyncio.sleep(self._sim.config.hook_retry_delay * 2 ** (attempt - 1))

    async def _post(
        self, url: str, body: str, headers: dict[str, str]
    ) -> tuple[int | None, str | None]:
        try:
            async with self.session().post(url, data=body, headers=headers) as response:
                await response.read()
                return response.status, None if response.status < 300 else response.reason
        except (aiohttp.ClientError, TimeoutError) as error:
            return None, f"{type(error).__name__}: {error}"

    async def _record_start(self, hook: sqlite3.Row, event: SimEvent, event_uuid: str) -> int:
        stamp = now_iso()
        async with self._sim.store.write() as conn:
            cur = await conn.execute(
                "INSERT INTO hook_deliveries (hook_id, project_id, event_kind, event_uuid, url,"
                " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (hook["id"], event.project_id, event.kind, event_uuid, hook["url"], stamp, stamp),
            )
            return int(cur.lastrowid or 0)

    async def _record_attempt(
        self, delivery_id: int, attempt: int, status: int | None, error: str | None, outcome: str
    ) -> None:
        async with self._sim.store.write() as conn:
            await conn.execute(
                "UPDATE hook_deliveries SET attempts = ?, status = ?, error = ?, outcome = ?,"
                " updated_at = ? WHERE id = ?",
                (attempt, status, error, outcome, now_iso(), delivery_id),
            )


def _wants(hook: sqlite3.Row, flag: str, event: SimEvent) -> bool:
    flags = json.loads(hook["flags"])
    attributes = event.payload.get("object_attributes") or {}
    confidential = isinstance(attributes, dict) and bool(
        attributes.get("confidential") or attributes.get("internal")
    )
    if confidential and event.kind in ("issue", "note"):
        return bool(flags.get(f"confidential_{flag}"))
    return bool(flags.get(flag))


def setup(app: web.Application, sim: Sim) -> None:
    base = f"{API}/projects/{{id}}/hooks"
    r = app.router
    r.add_get(base, list_hooks)
    r.add_post(base, add_hook)
    r.add_get(f"{base}/{{hook_id:\\d+}}", get_hook)
    r.add_put(f"{base}/{{hook_id:\\d+}}", edit_hook)
    r.add_delete(f"{base}/{{hook_id:\\d+}}", delete_hook)
    r.add_get(f"{API}/_sim/hook_deliveries", list_deliveries)
    deliverer = Deliverer(sim)
    for kind in EVENT_KINDS:
        sim.events.subscribe(kind, deliverer.on_event)
    app.on_cleanup.append(deliverer.close)
