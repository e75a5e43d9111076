"""Git smart HTTP: ``/<namespace>/<project>.git/{info/refs,git-upload-pack,git-receive-pack}``
served by ``git http-backend`` as a CGI subprocess, with GitLab's authentication rules.

Clients authenticate with HTTP Basic, any username and a token as the password
(``http://oauth2:TOKEN@host/ns/proj.git``); without valid credentials the answer is 401
with ``WWW-Authenticate: Basic realm="GitLab"`` so git asks for them. Reporters may fetch,
Developers may push. Protected branches are enforced by the repository's ``pre-receive``
hook from rules passed in the CGI environment (see :mod:`sim.git.hooks`); the
``post-receive`` hook logs the ref updates, which become ``push`` events afterwards.

Fault rules (:mod:`sim.core.faults`) apply here too: a ``before`` rule answers instead of
git (a fetch or push that fails, nothing changed); an ``after`` rule lets git perform the
request in full (a push updates the branch and emits its events) and then answers with the
rule's status, or with no answer at all, instead of git's.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import os
import sqlite3
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web

from sim.core.base import (
    DEVELOPER,
    GUEST,
    REPORTER,
    SIM_KEY,
    Sim,
    access_level,
    project_by_ref,
    user_for_token,
)
from sim.core.faults import FaultRule, fault_answer, take_after_fault
from sim.git.hooks import hook_env, read_push_log
from sim.git.protected_branches import push_rules
from sim.git.repos import GIT_KEY
from sim.git.repository import emit_push
from sim.git.run import clean_git_env

log = logging.getLogger(__name__)

SCHEMA = ""
SERVICES = {"git-upload-pack": REPORTER, "git-receive-pack": DEVELOPER}
_CHUNK = 64 * 1024


def _unauthorized() -> web.Response:
    return web.Response(
        status=401,
        text="HTTP Basic: Access denied\n",
        headers={"WWW-Authenticate": 'Basic realm="GitLab"'},
    )


async def _basic_user(request: web.Request, sim: Sim) -> sqlite3.Row | None:
    header = request.headers.get("Authorization", "")
    if not header.startswith("Basic "):
        return None
    try:
        decoded = base64.b64decode(header[len("Basic ") :], validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    _username, _, token = decoded.partition(":")
    return await user_for_token(sim, token) if token else None


def _service(request: web.Request) -> str | None:
    action = request.match_info["action"]
    if action == "info/refs":
        return request.query.get("service")
    return action


async def handle(request: web.Request) -> web.StreamResponse:
    sim = request.app[SIM_KEY]
    service = _service(request)
    if service not in SERVICES:
        return web.Response(status=403, text="Unsupported git service\n")
    user = await _basic_user(request, sim)
    if user is None:
        return _unauthorized()
    project = await project_by_ref(sim, request.match_info["repo"].removesuffix(".git"))
    level = await access_level(sim, user, int(project["id"])) if project else 0
    if project is None or level < GUEST:
        return web.Response(
            status=404, text="The project you were looking for could not be found.\n"
        )
    if level < SERVICES[service]:
        verb = "push code to" if service == "git-receive-pack" else "download code from"
        return web.Response(status=403, text=f"You are not allowed to {verb} this project.\n")
    repos = request.app[GIT_KEY]
    repo = await repos.ensure(project)
    with tempfile.TemporaryDirectory(prefix="sim-push-") as scratch:
        push_log = Path(scratch) / "updates"
        rules = await push_rules(sim, int(project["id"]), level, is_admin=bool(user["is_admin"]))
        env = {
            **_cgi_env(request, repos.root, repo, str(user["username"])),
            **hook_env(rules, push_log),
        }

        async def announce_pushes() -> None:
            for before, after, ref in read_push_log(push_log):
                await emit_push(request.app, project, user, ref, before, after)

        return await _run_backend(request, env, announce_pushes, take_after_fault(request))


def _cgi_env(request: web.Request, root: Path, repo: Path, username: str) -> dict[str, str]:
    relative = repo.relative_to(root).as_posix()
    env = clean_git_env()
    env.update(
        {
            "GIT_PROJECT_ROOT": os.fspath(root),
            "GIT_HTTP_EXPORT_ALL": "1",
            "PATH_INFO": f"/{relative}/{request.match_info['action']}",
            "QUERY_STRING": request.query_string,
            "REQUEST_METHOD": request.method,
            "CONTENT_TYPE": request.headers.get("Content-Type", ""),
            "REMOTE_USER": username,
            "REMOTE_ADDR": request.remote or "127.0.0.1",
            "SERVER_PROTOCOL": "HTTP/1.1",
        }
    )
    # No HTTP_CONTENT_ENCODING: aiohttp has already inflated a gzip request body, and
    # http-backend would try to inflate it a second time.
    if "Git-Protocol" in request.headers:
        env["GIT_PROTOCOL"] = request.headers["Git-Protocol"]
    return env


async def _run_backend(
    request: web.Request,
    env: dict[str, str],
    on_exit: Callable[[], Awaitable[None]],
    lost: FaultRule | None = None,
) -> web.StreamResponse:
    """Run the CGI and stream its answer; ``on_exit`` runs once the backend has finished but
    before the response ends, so a client whose push returned sees its events emitted.
    With ``lost`` (an ``after`` fault) git's answer is read in full and thrown away, and
    the fault answers instead."""
    process = await asyncio.create_subprocess_exec(
        "git",
        "http-backend",
        env=env,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdin and process.stdout and process.stderr
    feeding = asyncio.create_task(_feed(request, process.stdin))
    errors = asyncio.create_task(process.stderr.read())
    try:
        status, headers = await _read_cgi_headers(process.stdout)
        response: web.StreamResponse
        if lost is None:
            response = web.StreamResponse(status=status, headers=headers)
            await response.prepare(request)
        while chunk := await process.stdout.read(_CHUNK):
            if lost is None:
                await response.write(chunk)
        await feeding
        await process.wait()
        await on_exit()
        if lost is None:
            await response.write_eof()
        else:
            response = await fault_answer(request, lost)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        feeding.cancel()
    stderr = (await errors).decode(errors="replace").strip()
    if process.returncode != 0 or stderr:
        log.info("git http-backend exited %s: %s", process.returncode, stderr)
    return response


async def _feed(request: web.Request, stdin: asyncio.StreamWriter) -> None:
    try:
        while chunk := await request.content.read(_CHUNK):
            stdin.write(chunk)
            await stdin.drain()
    except (BrokenPipeError, ConnectionResetError):
        pass  # the backend answered without reading everything (e.g. an error)
    finally:
        stdin.close()


async def _read_cgi_headers(stdout: asyncio.StreamReader) -> tuple[int, dict[str, str]]:
    status, headers = 200, dict[str, str]()
    while True:
        line = (await stdout.readline()).decode("latin-1").rstrip("\r\n")
        if not line:
            return status, headers
        name, _, value = line.partition(":")
        if name.lower() == "status":
            status = int(value.strip().split()[0])
        else:
            headers[name.strip()] = value.strip()


def setup(app: web.Application, sim: Sim) -> None:
    route = r"/{repo:.+\.git}/{action:info/refs|git-upload-pack|git-receive-pack}"
    app.router.add_get(route, handle)
    app.router.add_post(route, handle)
