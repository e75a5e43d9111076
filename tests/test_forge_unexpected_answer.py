"""An answer that is not GitLab's, met over real HTTP by the merge-request port (SPEC §12):
the caller gets an error naming the field and what to check, not a silent default. A
stand-in server answers the jobs listing with an id that is not a number, as a proxy or
another API answering in GitLab's place might."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from forge.client import GitLabClient, RetryPolicy
from forge.fields import UnexpectedAnswer
from forge.gateway import Gateway
from forge.guard import Guard
from forge.settings import GitLabSettings
from tests.support.forge import BOT_TOKEN, PROJECT
from workflow import default_workflow

JOBS = [{"id": 41, "name": "lint", "status": "success"}, {"id": "forty-two", "name": "test"}]


class _NotGitLab(BaseHTTPRequestHandler):
    asked: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        self.asked.append(self.path)
        found = "/pipelines/5/jobs" in self.path
        body = json.dumps(JOBS if found else {"message": "404 Not found"}).encode()
        self.send_response(200 if found else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        return None


@pytest.fixture
def not_gitlab() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _NotGitLab)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


async def test_a_job_whose_id_is_not_a_number_is_refused_by_name(not_gitlab: str) -> None:
    settings = GitLabSettings(url=not_gitlab, threads=1, timeout_seconds=5)
    client = GitLabClient(
        settings, BOT_TOKEN, retry=RetryPolicy(max_retries=0, budget_seconds=5, base_delay=0.01)
    )
    gateway = Gateway(
        client, guard=Guard([BOT_TOKEN]), audit=None, workflow=default_workflow(), who="t"
    )
    try:
        with pytest.raises(UnexpectedAnswer) as raised:
            await gateway.merges.jobs(PROJECT, 5)
    finally:
        await client.close()
    assert (raised.value.kind, raised.value.field, raised.value.value) == ("job", "id", "forty-two")
    assert "check that gitlab.url points at GitLab" in str(raised.value)
    assert any("/pipelines/5/jobs" in path for path in _NotGitLab.asked)
