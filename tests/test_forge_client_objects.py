"""python-gitlab objects built once per thread, and a session that keeps no cookies."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import gitlab
import gitlab.base
import pytest

from forge.client import ForgeNotFound, ForgeUnavailable, GitLabClient, RetryPolicy
from forge.settings import GitLabSettings
from sim.core.app import RunningSim
from tests.support.forge import PROJECT, gateway_for, make_project


async def test_project_and_issue_handles_are_built_once_per_thread_and_stay_correct(
    sim: RunningSim, tmp_path: Path
) -> None:
    make_project(sim)
    async with gateway_for(sim, tmp_path / "db.sqlite3") as (gateway, _):
        client = gateway.calls.client
        first = await gateway.create_issue(PROJECT, "first", "one")
        second = await gateway.create_issue(PROJECT, "second", "two")
        await gateway.post_note(PROJECT, first.iid, "note on the first")
        await gateway.post_note(PROJECT, second.iid, "note on the second")

        def handles(gl: gitlab.Gitlab) -> tuple[object, ...]:
            project = gl.projects.get(PROJECT, lazy=True)
            return (
                project,
                gl.projects.get(PROJECT, lazy=True),
                project.issues.get(first.iid, lazy=True),
                project.issues.get(first.iid, lazy=True),
                project.issues.get(second.iid, lazy=True),
            )

        # One thread in the pool for this check: every call lands on the same thread.
        single = GitLabClient(GitLabSettings(url=sim.base_url, threads=1), "sim-bot-token")
        try:
            a = await single.call("handles", handles)
            b = await single.call("handles", handles)
        finally:
            await single.close()
        project, project_again, issue, issue_again, other = a
        assert project is project_again is b[0]
        assert issue is issue_again is b[2]
        assert other is not issue and other is b[4]
        # Shared handles still address their own issue.
        bodies_first = [n.body for n in await gateway.notes(PROJECT, first.iid)]
        bodies_second = [n.body for n in await gateway.notes(PROJECT, second.iid)]
        assert any("note on the first" in body for body in bodies_first)
        assert not any("note on the second" in body for body in bodies_first)
        assert any("note on the second" in body for body in bodies_second)
        assert client is not single


class _CookieServer(BaseHTTPRequestHandler):
    cookies_seen: ClassVar[list[str | None]] = []

    def do_GET(self) -> None:
        type(self).cookies_seen.append(self.headers.get("Cookie"))
        body = json.dumps({"id": 7, "path_with_namespace": "g/p"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Set-Cookie", "_gitlab_session=abc; path=/")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        return None


@pytest.fixture
def cookie_server() -> Iterator[str]:
    _CookieServer.cookies_seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _CookieServer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


async def test_the_session_neither_keeps_nor_sends_cookies(cookie_server: str) -> None:
    client = GitLabClient(GitLabSettings(url=cookie_server, threads=1), "token")
    try:
        for _ in range(2):
            await client.call("project.get", lambda gl: gl.projects.get("g/p").id)
        jar_sizes = await client.call("jar", lambda gl: len(gl.session.cookies))
    finally:
        await client.close()
    assert _CookieServer.cookies_seen == [None, None]
    assert jar_sizes == 0


def _without_proxy_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


def _dead_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_the_environments_proxy_is_read_once_when_the_thread_builds_its_client(
    cookie_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """requests re-read the environment (and ~/.netrc) on every call; crewline reads the
    proxy once per thread's client: set before the client is built it is used, set after it
    changes nothing."""
    _without_proxy_env(monkeypatch)
    dead_proxy = f"http://127.0.0.1:{_dead_port()}"
    no_retry = RetryPolicy(max_retries=0)

    monkeypatch.setenv("HTTP_PROXY", dead_proxy)
    proxied = GitLabClient(GitLabSettings(url=cookie_server, threads=1), "t", retry=no_retry)
    try:
        with pytest.raises(ForgeUnavailable):  # sent to the (dead) proxy, as configured
            await proxied.call("project.get", lambda gl: gl.projects.get("g/p").id)
    finally:
        await proxied.close()

    monkeypatch.delenv("HTTP_PROXY")
    direct = GitLabClient(GitLabSettings(url=cookie_server, threads=1), "t", retry=no_retry)
    try:
        assert await direct.call("project.get", lambda gl: gl.projects.get("g/p").id) == 7
        monkeypatch.setenv("HTTP_PROXY", dead_proxy)
        assert await direct.call("project.get", lambda gl: gl.projects.get("g/p").id) == 7
    finally:
        await direct.close()
    assert len(_CookieServer.cookies_seen) == 2


async def test_no_proxy_and_the_ca_bundle_from_the_environment_still_apply(
    cookie_server: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _without_proxy_env(monkeypatch)
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{_dead_port()}")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    bundle = tmp_path / "ca.pem"
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bundle))
    client = GitLabClient(GitLabSettings(url=cookie_server, threads=1), "t")
    try:
        assert await client.call("project.get", lambda gl: gl.projects.get("g/p").id) == 7
        verify = await client.call("verify", lambda gl: gl.ssl_verify)
    finally:
        await client.close()
    assert verify == str(bundle)
    unverified = GitLabClient(GitLabSettings(url=cookie_server, threads=1, ssl_verify=False), "t")
    try:
        assert await unverified.call("verify", lambda gl: gl.ssl_verify) is False
    finally:
        await unverified.close()


async def test_hot_reads_are_plain_dicts_across_pages_without_python_gitlab_objects(
    sim: RunningSim, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue and note lists, label events and an issue's read build no python-gitlab object
    (each builds its sub-managers, and ``.attributes`` deep-copies it): issue 14."""
    make_project(sim)
    async with gateway_for(sim, tmp_path / "db.sqlite3") as (gateway, _):
        issue = await gateway.create_issue(PROJECT, "hot", "read me")
        for n in range(5):
            await gateway.post_note(PROJECT, issue.iid, f"note {n}")
        await gateway.update_issue(PROJECT, issue.iid, add_labels=["workflow::dev-ready"])
        await gateway.update_issue(PROJECT, issue.iid, add_labels=["workflow::dev-doing"])
        monkeypatch.setattr("forge.gateway.PER_PAGE", 2)  # every list spans pages
        built: list[str] = []
        init = gitlab.base.RESTObject.__init__

        def counting(self: gitlab.base.RESTObject, *args: object, **kwargs: object) -> None:
            built.append(type(self).__name__)
            init(self, *args, **kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(gitlab.base.RESTObject, "__init__", counting)
        notes = await gateway.notes(PROJECT, issue.iid)
        events = await gateway.label_events(PROJECT, issue.iid)
        listed = await gateway.list_issues(PROJECT, labels=["workflow::dev-doing"])
        read = await gateway.get_issue(PROJECT, issue.iid)
        with pytest.raises(ForgeNotFound):
            await gateway.get_issue(PROJECT, issue.iid + 100)
        assert built == []
        bodies = [note.body for note in notes if not note.system]
        assert [body.split("\n")[0] for body in bodies] == [f"note {n}" for n in range(5)]
        assert {event.label for event in events} >= {"workflow::dev-ready", "workflow::dev-doing"}
        assert [found.iid for found in listed] == [issue.iid]
        assert read.title == "hot" and "workflow::dev-doing" in read.labels
