"""The lean HTTP path of the hot raw calls (forge/lean_http.py, decision 0049), against the
simulator over real HTTP: it carries the calls instead of requests, pages through long
lists, keeps the retry loop's view of 429s, 5xx and dropped answers, counts every answer,
and stands aside where requests' own handling is needed (a proxy, a redirect)."""

from __future__ import annotations

import ssl
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import gitlab
import pytest
import requests

from forge.client import ForgeUnavailable, GitLabClient, RetryPolicy
from forge.lean_http import Answer, LeanHttp, NeverSent, _origin, lean_of
from forge.raw_http import project_path, raw_get, raw_list, raw_post
from forge.settings import GitLabSettings
from forge.thread_client import build_gitlab
from sim.core.app import RunningSim
from tests.support.faults import add_fault, lose_answer, rules
from tests.support.forge import BOT_TOKEN, PROJECT, admin, gateway_for, make_project


def _answers() -> tuple[list[Answer], Any]:
    seen: list[Answer] = []
    return seen, seen.append


def test_raw_calls_go_over_the_lean_path_and_every_answer_is_counted(
    sim: RunningSim, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_project(sim)
    seen, hook = _answers()
    gl = build_gitlab(GitLabSettings(url=sim.base_url), BOT_TOKEN, [], answered=hook)
    assert lean_of(gl) is not None

    def no_requests(*_: Any, **__: Any) -> Any:
        raise AssertionError("a raw call went through requests")

    monkeypatch.setattr(requests.Session, "send", no_requests)
    issues = project_path(PROJECT, "issues")
    filed = raw_post(gl, issues, {"title": "Lean", "labels": "workflow::pm-ready"})
    path = project_path(PROJECT, "issues", filed["iid"])
    for n in range(5):
        raw_post(gl, f"{path}/notes", {"body": f"note {n}"})
    # Five notes two to a page: three pages, followed through GitLab's Link header.
    notes = raw_list(gl, f"{path}/notes", {"per_page": 2, "sort": "asc"})
    assert [note["body"] for note in notes] == [f"note {n}" for n in range(5)]
    assert raw_get(gl, path)["title"] == "Lean"
    assert len(seen) == 1 + 5 + 3 + 1 and {a.status_code for a in seen} <= {200, 201}


def test_with_a_proxy_for_gitlab_the_calls_stay_on_requests(
    sim: RunningSim, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    # A NO_PROXY list alone, or a proxy for another scheme, leaves GitLab reached directly.
    monkeypatch.setenv("NO_PROXY", "example.org")
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.invalid:3128")
    gl = build_gitlab(GitLabSettings(url=sim.base_url), BOT_TOKEN, [], answered=lambda _: None)
    assert lean_of(gl) is not None
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.invalid:3128")
    gl = build_gitlab(GitLabSettings(url=sim.base_url), BOT_TOKEN, [], answered=lambda _: None)
    assert lean_of(gl) is None


@pytest.mark.parametrize("lean", [True, False], ids=["lean path", "python-gitlab"])
def test_a_list_is_read_whole_or_its_first_page_on_either_path(sim: RunningSim, lean: bool) -> None:
    make_project(sim)
    project = admin(sim).projects.get(PROJECT)
    for n in range(3):
        project.issues.create({"title": f"listed {n}"})
    answered = (lambda _: None) if lean else None
    gl = build_gitlab(GitLabSettings(url=sim.base_url), BOT_TOKEN, [], answered=answered)
    assert (lean_of(gl) is not None) == lean
    path, params = project_path(PROJECT, "issues"), {"per_page": 1, "sort": "asc"}
    assert len(raw_list(gl, path, params)) == 3
    first = raw_list(gl, path, params, all_pages=False)
    assert [issue["title"] for issue in first] == ["listed 0"]


def test_a_next_page_is_asked_of_the_configured_origin_whatever_the_link_names() -> None:
    lean = LeanHttp(
        "https://GitLab.example.com:443", "t", timeout=5, tls=None, on_answer=lambda _: None
    )
    # GitLab writes its links with its external URL: another case, no default port.
    same = '<https://gitlab.example.com/api/v4/x?page=2>; rel="next", <https://gitlab.example.com/api/v4/x?page=9>; rel="last"'
    assert lean._next_page(same) == "/api/v4/x?page=2"
    assert lean._next_page('<https://gitlab.example.com/api/v4/x?page=1>; rel="first"') is None
    # A URL may hold commas (a list of labels): the angle brackets delimit it.
    commas = '<https://gitlab.example.com/api/v4/x?labels=a,b&page=1>; rel="prev", <https://gitlab.example.com/api/v4/x?labels=a,b&page=3>; rel="next"'
    assert lean._next_page(commas) == "/api/v4/x?labels=a,b&page=3"
    # Whatever host a link names, only its path is kept: the token goes nowhere else.
    assert lean._next_page('<https://evil.example.net/api/v4/x?page=2>; rel="next"') == (
        "/api/v4/x?page=2"
    )
    # A parameter without a value is left out, as requests leaves it out.
    assert lean._url("/x", {"a": None, "b": 1}) == "/api/v4/x?b=1"


def test_an_origin_ignores_case_and_a_written_default_port_and_nothing_else() -> None:
    """What a redirect is judged by: the same origin written differently stays ours; another
    host, scheme or port is not (the token is never carried there)."""
    ours = _origin("https://gitlab.example.com/gitlab")
    assert _origin("HTTPS://GitLab.Example.COM:443/api/v4/x") == ours
    for other in (
        "http://gitlab.example.com/",
        "https://gitlab.example.com:8443/",
        "https://gitlab.example.com.evil.net/",
        "https://gitlab.example.com:notaport/",
    ):
        assert _origin(other) != ours, other


def test_an_ipv6_literal_keeps_its_address_and_the_default_port() -> None:
    for url, port in (("https://[2001:db8::1]", 443), ("http://[::1]:8080/gitlab", 8080)):
        lean = LeanHttp(url, "t", timeout=5, tls=None, on_answer=lambda _: None)
        assert (lean._host, lean._port) == (url.split("[")[1].split("]")[0], port)


async def test_the_retry_loop_sees_5xx_429_and_lost_answers_on_the_lean_path(
    sim: RunningSim, tmp_path: Path
) -> None:
    make_project(sim)
    async with gateway_for(sim, tmp_path / "db.sqlite3") as (gateway, _):
        filed = await gateway.create_issue(PROJECT, "Faults", "", ["workflow::pm-ready"])
        notes = f"/api/v4/projects/*/issues/{filed.iid}/notes"
        add_fault(sim, method="GET", path=notes, status=503, count=1)
        add_fault(sim, method="GET", path=notes, status=429, retry_after=0, count=1)
        assert await gateway.notes(PROJECT, filed.iid) == []  # retried twice, then read
        assert [rule["hits"] for rule in rules(sim)] == [1, 1]
        assert gateway.calls.client._leans, "the calls went over the lean path"
        assert any(lean._connection is not None for lean in gateway.calls.client._leans)
        # A post performed whose answer is lost (a 503 after the fact, then a dropped
        # connection): found by its marker, never posted twice.
        regex = rf"/issues/{filed.iid}/notes$"
        lose_answer(sim, "POST", regex)
        first = await gateway.post_note(PROJECT, filed.iid, "exactly once")
        lose_answer(sim, "POST", regex, drop=True)
        second = await gateway.post_note(PROJECT, filed.iid, "exactly once too")
        bodies = [note.body for note in await gateway.notes(PROJECT, filed.iid)]
        assert sum("exactly once\n" in b for b in bodies) == 1
        assert sum("exactly once too" in b for b in bodies) == 1
        assert first.id != second.id


class _JsonHandler(BaseHTTPRequestHandler):
    def send_json(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: Any) -> None:
        pass


class _Redirecting(_JsonHandler):
    """Redirects an API call to another path here, or (``/away/...``) to another host, and
    answers a paged list whose next link comes after a proxy's own Link header."""

    def do_GET(self) -> None:
        if self.path.startswith("/moved/"):
            self.send_json(200, b'{"iid": 7, "title": "after the redirect"}')
        elif self.path.startswith("/api/v4/paged"):
            page = 2 if "page=2" in self.path else 1
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Link", '</style.css>; rel="preload"')
            if page == 1:
                self.send_header(
                    "Link", f'<http://{self.headers["Host"]}/api/v4/paged?page=2>; rel="next"'
                )
            body = f'[{{"page": {page}}}]'.encode()
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        else:
            away = self.path.startswith("/api/v4/away")
            self.send_response(302 if away else 301)
            target = "http://elsewhere.invalid" if away else ""
            self.send_header("Location", f"{target}/moved{self.path}")
            self.send_header("Content-Length", "0")
            self.end_headers()


@pytest.fixture
def redirecting() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Redirecting)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_a_redirect_hands_the_call_and_the_thread_back_to_python_gitlab(
    redirecting: str,
) -> None:
    seen, hook = _answers()
    gl = build_gitlab(GitLabSettings(url=redirecting), "t", [], answered=hook)
    assert raw_get(gl, "/projects/1/issues/7") == {"iid": 7, "title": "after the redirect"}
    assert [a.status_code for a in seen] == [301]  # the lean path saw the redirect only
    assert lean_of(gl) is None  # and stepped aside for this thread's later calls


def test_a_redirect_to_another_host_is_refused_with_the_token_kept(redirecting: str) -> None:
    gl = build_gitlab(GitLabSettings(url=redirecting), "t", [], answered=lambda _: None)
    with pytest.raises(gitlab.exceptions.GitlabHttpError, match="another origin"):
        raw_get(gl, "/away/1")
    assert lean_of(gl) is not None  # nothing was handed to python-gitlab to follow


def test_pages_follow_gitlabs_link_after_a_proxys_own(redirecting: str) -> None:
    gl = build_gitlab(GitLabSettings(url=redirecting), "t", [], answered=lambda _: None)
    assert raw_list(gl, "/paged", {}) == [{"page": 1}, {"page": 2}]


async def test_a_host_without_gitlab_fails_as_never_sent_and_is_retried() -> None:
    # Nothing listens on this port: no request can have reached GitLab.
    client = GitLabClient(
        GitLabSettings(url="http://127.0.0.1:9", timeout_seconds=2),
        "t",
        retry=RetryPolicy(max_retries=2, budget_seconds=5, base_delay=0.01),
    )
    attempts: list[int] = []

    def get(gl: gitlab.Gitlab) -> Any:
        attempts.append(1)
        return raw_get(gl, "/projects/1")

    try:
        with pytest.raises(ForgeUnavailable, match="gave up after 3 attempts"):
            await client.call("project.get", get, once=True)
    finally:
        await client.close()
    assert len(attempts) == 3  # a write that must not happen twice is still retried blindly


class _Answering(_JsonHandler):
    def do_GET(self) -> None:
        self.send_json(200, b'{"iid": 3, "title": "over TLS"}')


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """An HTTPS server on 127.0.0.1 with a self-signed certificate made for this test."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Answering)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}", cert
    finally:
        server.shutdown()
        server.server_close()


def test_tls_is_verified_as_requests_verifies_it(
    tls_server: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, cert = tls_server
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    # Against requests' CA bundle the self-signed certificate is refused before anything is
    # sent.
    strict = build_gitlab(GitLabSettings(url=url), "t", [], answered=lambda _: None)
    with pytest.raises(NeverSent, match="CERTIFICATE_VERIFY_FAILED"):
        raw_get(strict, "/projects/1/issues/3")
    # With the certificate as the CA bundle (REQUESTS_CA_BUNDLE), or verification off, it
    # answers over the lean path.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))
    trusted = build_gitlab(GitLabSettings(url=url), "t", [], answered=lambda _: None)
    assert raw_get(trusted, "/projects/1/issues/3")["title"] == "over TLS"
    monkeypatch.delenv("REQUESTS_CA_BUNDLE")
    unverified = build_gitlab(
        GitLabSettings(url=url, ssl_verify=False), "t", [], answered=lambda _: None
    )
    assert raw_get(unverified, "/projects/1/issues/3")["iid"] == 3
    # A directory of certificates (requests takes one too) is a trust store, not an error.
    hashed = cert.parent / "certs"
    hashed.mkdir()
    subject_hash = subprocess.run(
        ["openssl", "x509", "-hash", "-noout", "-in", str(cert)],
        check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    (hashed / f"{subject_hash}.0").write_bytes(cert.read_bytes())
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(hashed))
    from_dir = build_gitlab(GitLabSettings(url=url), "t", [], answered=lambda _: None)
    assert lean_of(from_dir) is not None
    assert raw_get(from_dir, "/projects/1/issues/3")["title"] == "over TLS"


async def test_closing_the_client_closes_its_threads_connections(sim: RunningSim) -> None:
    make_project(sim)
    client = GitLabClient(GitLabSettings(url=sim.base_url, threads=2), BOT_TOKEN)
    path = project_path(PROJECT, "issues")
    await client.call("issue.list", lambda gl: raw_list(gl, path, {}))
    kept = list(client._leans)  # one per pool thread that made a call
    assert kept and all(lean._connection is not None for lean in kept)
    await client.close()
    assert all(lean._connection is None for lean in kept)
