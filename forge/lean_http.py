"""A lean HTTP/1.1 path for the hot raw calls (``forge/raw_http.py``): one keep-alive
``http.client`` connection per pool thread, JSON in and out, no ``requests`` session, no
python-gitlab request machinery (docs/decisions/0049).

A read costs about a third of the CPU it costs through python-gitlab and requests, and the
hot calls (an issue, its notes, its label events, the listing, note posts and edits, issue
updates) are most of what a host sends. It keeps what the client's retry loop relies on:

- an answer worth retrying (429, 5xx) raises :class:`Transient` with GitLab's message and
  ``Retry-After``, as the ``requests`` hook does;
- another error answer raises python-gitlab's ``GitlabHttpError`` with its status and
  message, typed by ``forge/client.py`` like any;
- a failure before the request can have reached GitLab (no connection) raises
  :class:`NeverSent`; one after it may have (a reset, a timeout, a dropped answer) raises
  :class:`MaybeSent`, so a write that must not happen twice is looked for before a retry;
- every answer is counted (metrics, the rate budget) through ``on_answer``.

It is used only where it is as good as the general path: no proxy configured for GitLab's
URL (a tunnel is requests' business), and it steps aside for good on a redirect (the call
is sent again through python-gitlab, which follows or refuses it as before). A reused
connection the server has closed meanwhile is noticed before the request is sent (the socket
reads as closed), as urllib3 does, and replaced.
"""

from __future__ import annotations

import contextlib
import functools
import http.client
import json
import os
import re
import select
import ssl
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urljoin, urlsplit

import gitlab
import gitlab.exceptions

AnswerHook = Callable[["Answer"], None]

# One link of a Link header: <url>; rel="next" (other parameters may stand between).
_NEXT = re.compile(r'<([^<>]*)>[^,<]*;\s*rel="?next"?')


@dataclass
class Answer:
    """What a response hook sees of an answer (``forge.metrics.gitlab_response``'s shape)."""

    status_code: int
    headers: Any  # http.client's HTTPMessage, or requests' headers: a case-blind .get


class Transient(Exception):
    """An answer worth retrying (429 or 5xx)."""

    def __init__(self, status: int, retry_after: float | None, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after
        self.message = message


class NeverSent(Exception):
    """The request cannot have reached GitLab: no connection could be made."""


class MaybeSent(Exception):
    """The request may have reached GitLab and been performed; its answer was not read."""


class Redirected(Exception):
    """GitLab answered with a redirect: this path steps aside for python-gitlab's."""


def message_of(body: bytes | str | None) -> str:
    """GitLab's error message in an answer's body (its ``message`` or ``error``), else the
    body's start."""
    if not body:
        return ""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    try:
        data = json.loads(text)
    except ValueError:
        return text[:500]
    if isinstance(data, dict):
        for key in ("message", "error"):
            if key in data:
                return str(data[key])
    return text[:500]


def retry_after_of(headers: Any) -> float | None:
    """The ``Retry-After`` seconds of an answer's headers (anything with a ``.get``)."""
    header = headers.get("Retry-After")
    if header is None:
        return None
    try:
        return max(0.0, float(header))
    except ValueError:
        return None


class LeanHttp:
    """One thread's connection to GitLab's API for raw JSON calls (not thread-safe: each pool
    thread has its own, beside its python-gitlab client)."""

    def __init__(
        self,
        url: str,
        token: str,
        *,
        timeout: float,
        tls: ssl.SSLContext | None,
        on_answer: AnswerHook,
    ) -> None:
        parts = urlsplit(url)
        self._https = parts.scheme == "https"
        self._host = parts.hostname or ""
        # Always explicit: http.client would split an IPv6 literal's last group off as a port.
        self._port = parts.port or (443 if self._https else 80)
        self._origin = _origin(url)
        self._base = f"{parts.scheme}://{parts.netloc}"
        self._prefix = f"{parts.path.rstrip('/')}/api/v4"
        self._headers = {
            "PRIVATE-TOKEN": token,
            "User-Agent": "crewline",
            "Accept": "application/json",
        }
        self._timeout = timeout
        self._tls = tls
        self._on_answer = on_answer
        self._connection: http.client.HTTPConnection | None = None
        self.redirected = False  # once GitLab redirected, python-gitlab takes every call

    def get(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        return self._json("GET", self._url(path, params), None)

    def get_all(self, path: str, params: Mapping[str, Any]) -> list[Any]:
        """Every page of the list at ``path``, following GitLab's ``Link: rel="next"``."""
        items: list[Any] = []
        url: str | None = self._url(path, params)
        while url is not None:
            page, headers = self._send("GET", url, None)
            if not isinstance(page, list):
                raise gitlab.exceptions.GitlabParsingError(f"GitLab's answer to {path} is no list")
            items.extend(page)
            # Every Link header: a proxy may add its own ahead of GitLab's.
            url = self._next_page(", ".join(headers.get_all("Link") or []))
        return items

    def post(self, path: str, data: Mapping[str, Any]) -> Any:
        return self._json("POST", self._url(path, None), data)

    def put(self, path: str, data: Mapping[str, Any]) -> Any:
        return self._json("PUT", self._url(path, None), data)

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def _url(self, path: str, params: Mapping[str, Any] | None) -> str:
        given = {key: value for key, value in (params or {}).items() if value is not None}
        query = f"?{urlencode(given, doseq=True)}" if given else ""
        return f"{self._prefix}{path}{query}"

    def _next_page(self, link: str) -> str | None:
        """The path of the page ``rel="next"`` in a ``Link`` header names (its URL in angle
        brackets, which may hold commas), or None on the last page. Only its path and query
        are kept: GitLab writes the link with its configured external URL, which may name
        this host differently (another case, a default port, an internal name), and the
        request goes to the origin crewline was configured with, never elsewhere with its
        token (python-gitlab's ``keep_base_url``)."""
        found = _NEXT.search(link)
        if found is None:
            return None
        parts = urlsplit(found[1])
        return f"{parts.path}?{parts.query}" if parts.query else parts.path

    def _json(self, method: str, url: str, data: Mapping[str, Any] | None) -> Any:
        return self._send(method, url, data)[0]

    def _send(
        self, method: str, url: str, data: Mapping[str, Any] | None
    ) -> tuple[Any, http.client.HTTPMessage]:
        body = None if data is None else json.dumps(data).encode("utf-8")
        headers = dict(self._headers)
        if body is not None:
            headers["Content-Type"] = "application/json"
        connection = self._connected()
        try:
            # The server may have answered (a 413, a 401) and closed before the body was all
            # sent: that answer is read, as urllib3 does; no answer means MaybeSent.
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                connection.request(method, url, body=body, headers=headers)
            response = connection.getresponse()
            content = response.read()
        except (OSError, http.client.HTTPException) as error:
            self.close()
            raise MaybeSent(f"{type(error).__name__}: {error}") from error
        status, answer_headers = response.status, response.headers
        if response.will_close:
            self.close()
        self._on_answer(Answer(status, answer_headers))
        if 300 <= status < 400:
            self._redirected(method, url, status, answer_headers.get("Location", ""))
        if status == 429 or status >= 500:
            message = message_of(content) or response.reason or str(status)
            raise Transient(status, retry_after_of(answer_headers), message)
        if status >= 400:
            raise gitlab.exceptions.GitlabHttpError(
                error_message=message_of(content) or response.reason,
                response_code=status,
                response_body=content,
            )
        try:
            return (json.loads(content) if content else None), answer_headers
        except ValueError as error:
            raise gitlab.exceptions.GitlabParsingError(
                f"GitLab's answer to {method} {url} is not JSON"
            ) from error

    def _redirected(self, method: str, url: str, status: int, location: str) -> None:
        """Step aside for python-gitlab (nothing was performed), unless the redirect leads
        to another origin: requests would carry the token there (it strips only an
        ``Authorization`` header on such a redirect), so it is refused here."""
        self.close()
        target = urljoin(f"{self._base}{url}", location)
        if _origin(target) != self._origin:
            raise gitlab.exceptions.GitlabHttpError(
                error_message=(
                    f"GitLab redirected {method} {url} to another origin ({target}); crewline "
                    "does not follow it with its token: set gitlab.url to where GitLab answers"
                ),
                response_code=status,
            )
        self.redirected = True
        raise Redirected(f"GitLab redirected {method} {url} ({status})")

    def _connected(self) -> http.client.HTTPConnection:
        """The open connection, unless the server closed it since its last answer; else a
        new one. Raises :class:`NeverSent` when no connection can be made."""
        connection = self._connection
        if connection is not None and _dropped(connection):
            self.close()
            connection = None
        if connection is None:
            if self._https:
                connection = http.client.HTTPSConnection(
                    self._host, self._port, timeout=self._timeout, context=self._tls
                )
            else:
                connection = http.client.HTTPConnection(
                    self._host, self._port, timeout=self._timeout
                )
            try:
                connection.connect()
            except OSError as error:
                connection.close()
                raise NeverSent(f"{type(error).__name__}: {error}") from error
            self._connection = connection
        return connection


def _dropped(connection: http.client.HTTPConnection) -> bool:
    """Whether a kept-alive connection reads as closed (or holds bytes nobody asked for).
    ``poll``, not ``select``: a descriptor above 1024 is fine."""
    sock = connection.sock
    if sock is None:
        return True
    try:
        poller = select.poll()
        poller.register(sock, select.POLLIN)
        return bool(poller.poll(0))
    except (OSError, ValueError):
        return True


def _origin(url: str) -> tuple[str, str, int]:
    """Scheme, lower-case host and port (the scheme's default when none is written); a
    port that is no number names no origin of ours (port -1)."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError:
        port = -1
    return scheme, (parts.hostname or "").lower(), port


@functools.lru_cache(maxsize=8)
def tls_context(verify: bool | str) -> ssl.SSLContext:
    """What requests would verify against: its CA bundle (certifi) unless a path is given;
    nothing when verification is off. Built once per setting and shared by every pool
    thread (loading certifi's bundle costs some 20 ms of CPU; a context is only read)."""
    if verify is False:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    if isinstance(verify, str):  # a bundle file, or a directory of hashed certificates
        if os.path.isdir(verify):
            return ssl.create_default_context(capath=verify)
        return ssl.create_default_context(cafile=verify)
    # requests' own bundle (certifi's), so both paths trust the same roots.
    from requests.utils import DEFAULT_CA_BUNDLE_PATH

    return ssl.create_default_context(cafile=DEFAULT_CA_BUNDLE_PATH)


_LEAN: weakref.WeakKeyDictionary[gitlab.Gitlab, LeanHttp] = weakref.WeakKeyDictionary()


def attach(gl: gitlab.Gitlab, lean: LeanHttp) -> None:
    """Route ``gl``'s raw calls (``forge/raw_http.py``) through ``lean``."""
    _LEAN[gl] = lean


def lean_of(gl: gitlab.Gitlab) -> LeanHttp | None:
    """The lean path of ``gl``'s thread, unless it has none or stepped aside."""
    lean = _LEAN.get(gl)
    return None if lean is None or lean.redirected else lean
