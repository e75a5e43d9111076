"""The simulator's core: configuration, users and tokens, projects and membership,
authentication and access levels. Every other route module builds on the helpers here; the
``/version``, ``/user``, ``/users`` and ``/projects`` endpoints are in :mod:`sim.core.accounts`."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from aiohttp import web

from sim.core.events import EventBus
from sim.core.http import fail, forbidden, not_found, now_iso
from sim.core.rate_limit import RateWindows
from sim.core.store import SimStore

GUEST, REPORTER, DEVELOPER, MAINTAINER, OWNER = 10, 20, 30, 40, 50
ACCESS_NAMES = {
    GUEST: "Guest",
    REPORTER: "Reporter",
    DEVELOPER: "Developer",
    MAINTAINER: "Maintainer",
    OWNER: "Owner",
}

API = "/api/v4"


@dataclass
class SimConfig:
    state_dir: Path
    host: str = "127.0.0.1"
    port: int = 0
    tier: str = "premium"  # "premium": scoped labels are exclusive; "free": they coexist
    seed: str | None = None  # "demo" seeds project demo/app
    root_token: str = "sim-root-token"
    bot_token: str = "sim-bot-token"
    maintainer_token: str = "sim-maintainer-token"
    hook_retries: int = 3
    hook_retry_delay: float = 0.5
    ci_concurrency: int = 2  # CI jobs running at once
    ci_job_timeout: float = 3600.0  # seconds, for jobs without their own ``timeout:``
    # Seconds before a retried job's pipeline is processed again. GitLab answers a retry at
    # once and moves the pipeline on in a background worker, so for a moment the pipeline
    # still says ``failed`` while its retried job waits; 0 processes it before answering.
    ci_retry_processing_delay: float = 0.0
    # GitLab's rate limit per user and minute, reported in RateLimit-* headers (GitLab.com's
    # authenticated API limit); enforced with 429s only when asked.
    rate_limit: int = 2000
    rate_limit_enforced: bool = False


@dataclass
class Sim:
    config: SimConfig
    store: SimStore
    events: EventBus = field(default_factory=EventBus)
    base_url: str = ""  # set once the server listens, e.g. http://127.0.0.1:8929
    rate: RateWindows = field(init=False)

    def __post_init__(self) -> None:
        self.rate = RateWindows(self.config.rate_limit)

    @property
    def premium(self) -> bool:
        return self.config.tier == "premium"


SIM_KEY = web.AppKey("sim", Sim)
USER_KEY = web.RequestKey("sim.user", sqlite3.Row)  # the authenticated user's row

SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    username TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    email TEXT NOT NULL,
    is_admin INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS tokens (
    token TEXT PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users(id),
    name TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS projects (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    path TEXT NOT NULL,
    namespace TEXT NOT NULL,
    name TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    default_branch TEXT NOT NULL DEFAULT 'main',
    visibility TEXT NOT NULL DEFAULT 'private',
    created_at TEXT NOT NULL,
    last_activity_at TEXT NOT NULL,
    UNIQUE (namespace, path)
);
CREATE TABLE IF NOT EXISTS members (
    project_id INTEGER NOT NULL REFERENCES projects(id),
    user_id INTEGER NOT NULL REFERENCES users(id),
    access_level INTEGER NOT NULL,
    PRIMARY KEY (project_id, user_id)
)
"""


# ---------------------------------------------------------------- users and tokens


async def create_user(
    sim: Sim, username: str, token: str, *, admin: bool = False, name: str | None = None
) -> int:
    """Create a user (or return the existing one) and make sure ``token`` authenticates it."""
    async with sim.store.write() as conn:
        cur = await conn.execute("SELECT id FROM users WHERE username = ?", (username,))
        row = await cur.fetchone()
        if row is None:
            cur = await conn.execute(
                "INSERT INTO users (username, name, email, is_admin, created_at) VALUES (?, ?, ?, ?, ?)",
                (username, name or username, f"{username}@sim.invalid", int(admin), now_iso()),
            )
            user_id = int(cur.lastrowid or 0)
        else:
            user_id = int(row[0])
        await conn.execute(
            "INSERT OR REPLACE INTO tokens (token, user_id, name) VALUES (?, ?, ?)",
            (token, user_id, "sim"),
        )
    return user_id


async def user_for_token(sim: Sim, token: str) -> sqlite3.Row | None:
    return await sim.store.fetchone(
        "SELECT users.* FROM tokens JOIN users ON users.id = tokens.user_id WHERE tokens.token = ?",
        (token,),
    )


async def user_by_id(sim: Sim, user_id: int) -> sqlite3.Row | None:
    return await sim.store.fetchone("SELECT * FROM users WHERE id = ?", (user_id,))


def user_json(sim: Sim, user: sqlite3.Row) -> dict[str, Any]:
    """The "basic user" shape GitLab embeds as author, assignee, merged_by..."""
    return {
        "id": user["id"],
        "username": user["username"],
        "name": user["name"],
        "state": "active",
        "locked": False,
        "avatar_url": None,
        "web_url": f"{sim.base_url}/{user['username']}",
    }


def current_user(request: web.Request) -> sqlite3.Row:
    return request[USER_KEY]


def token_of(request: web.Request) -> str | None:
    token = request.headers.get("PRIVATE-TOKEN")
    if token:
        return token
    auth = request.headers.get("Authorization", "")
    if auth.startswith("Bearer "):
        return auth[len("Bearer ") :].strip()
    return request.query.get("private_token") or request.query.get("access_token")


@web.middleware
async def auth_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    """Every ``/api/v4`` route needs a valid token (as on GitLab): 401 otherwise."""
    if request.path.startswith(API + "/"):
        token = token_of(request)
        user = await user_for_token(request.app[SIM_KEY], token) if token else None
        if user is None:
            fail(401, "401 Unauthorized")
        request[USER_KEY] = user
        sim = request.app[SIM_KEY]
        headers, over = sim.rate.count(int(user["id"]))
        if over and sim.config.rate_limit_enforced:
            refused = web.HTTPTooManyRequests(
                text='{"message":"Retry later"}', content_type="application/json"
            )
            refused.headers.update(headers)
            raise refused
        try:
            answer: web.StreamResponse = await handler(request)
        except web.HTTPException as error:
            error.headers.update(headers)
            raise
        if not answer.prepared:  # a streamed answer has sent its headers already
            answer.headers.update(headers)
        return answer
    response: web.StreamResponse = await handler(request)
    return response


# ---------------------------------------------------------------- projects and access


async def create_project(
    sim: Sim,
    path_with_namespace: str,
    *,
    members: dict[int, int] | None = None,
    default_branch: str = "main",
) -> int:
    """Create a project (or return the existing one) with ``members``: user id -> access level."""
    namespace, _, path = path_with_namespace.rpartition("/")
    if not namespace:
        raise ValueError(f"project path needs a namespace: {path_with_namespace!r}")
    async with sim.store.write() as conn:
        cur = await conn.execute(
            "SELECT id FROM projects WHERE namespace = ? AND path = ?", (namespace, path)
        )
        row = await cur.fetchone()
        if row is None:
            stamp = now_iso()
            cur = await conn.execute(
                "INSERT INTO projects (path, namespace, name, default_branch, created_at, last_activity_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (path, namespace, path, default_branch, stamp, stamp),
            )
            project_id = int(cur.lastrowid or 0)
        else:
            project_id = int(row[0])
        for user_id, level in (members or {}).items():
            await conn.execute(
                "INSERT OR REPLACE INTO members (project_id, user_id, access_level) VALUES (?, ?, ?)",
                (project_id, user_id, level),
            )
    return project_id


async def access_level(sim: Sim, user: sqlite3.Row, project_id: int) -> int:
    """The user's effective access level on the project; administrators are Owners."""
    if user["is_admin"]:
        return OWNER
    row = await sim.store.fetchone(
        "SELECT access_level FROM members WHERE project_id = ? AND user_id = ?",
        (project_id, user["id"]),
    )
    return int(row[0]) if row else 0


async def project_by_ref(sim: Sim, ref: str) -> sqlite3.Row | None:
    """A project by numeric id or by (URL-decoded) ``namespace/path``."""
    ref = unquote(ref)
    if ref.isdigit():
        return await sim.store.fetchone("SELECT * FROM projects WHERE id = ?", (int(ref),))
    namespace, _, path = ref.rpartition("/")
    return await sim.store.fetchone(
        "SELECT * FROM projects WHERE namespace = ? AND path = ?", (namespace, path)
    )


async def load_project(request: web.Request, min_access: int = GUEST) -> sqlite3.Row:
    """The project named by the route's ``{id}``: 404 if the user cannot see it (as GitLab
    hides private projects), 403 if they can see it but lack ``min_access``."""
    sim = request.app[SIM_KEY]
    project = await project_by_ref(sim, request.match_info["id"])
    if project is None:
        not_found("Project Not Found")
    level = await access_level(sim, current_user(request), int(project["id"]))
    if level < GUEST:
        not_found("Project Not Found")
    if level < min_access:
        forbidden()
    return project


def project_json(sim: Sim, project: sqlite3.Row, level: int | None = None) -> dict[str, Any]:
    full_path = f"{project['namespace']}/{project['path']}"
    body: dict[str, Any] = {
        "id": project["id"],
        "name": project["name"],
        "path": project["path"],
        "path_with_namespace": full_path,
        "name_with_namespace": f"{project['namespace']} / {project['name']}",
        "namespace": {
            "id": 1,
            "name": project["namespace"],
            "path": project["namespace"],
            "kind": "group",
            "full_path": project["namespace"],
        },
        "description": project["description"],
        "default_branch": project["default_branch"],
        "visibility": project["visibility"],
        "web_url": f"{sim.base_url}/{full_path}",
        "http_url_to_repo": f"{sim.base_url}/{full_path}.git",
        "ssh_url_to_repo": f"git@sim.invalid:{full_path}.git",
        "created_at": project["created_at"],
        "last_activity_at": project["last_activity_at"],
        "issues_enabled": True,
        "merge_requests_enabled": True,
        "only_allow_merge_if_pipeline_succeeds": False,
        "remove_source_branch_after_merge": True,
        "merge_method": "merge",
    }
    if level is not None:
        body["permissions"] = {
            "project_access": {"access_level": level, "notification_level": 3},
            "group_access": None,
        }
    return body


# ---------------------------------------------------------------- routes


def setup(app: web.Application, sim: Sim) -> None:
    """Nothing to add: this module's routes are in :mod:`sim.core.accounts`."""
