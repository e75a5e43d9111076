"""Fault injection for reliability tests: make chosen requests fail, slow down, or be
performed with their answer lost.

Administrator-only endpoints (never faulted themselves):

``POST /api/v4/_sim/faults`` adds a rule (JSON or form):
    ``method``      HTTP method or ``*`` (default ``*``)
    ``path``        fnmatch pattern on the request path, e.g. ``/api/v4/projects/*/issues*``
                    (git smart HTTP paths too: ``/demo/app.git/git-receive-pack``)
    ``path_regex``  or a regular expression searched in the path (give one or neither;
                    neither matches every path)
    ``status``      the error status to answer (400..599); omit for latency only
    ``drop``        ``true``: close the connection without any answer instead of a status
                    (the client sees a connection reset / "remote end closed connection")
    ``when``        ``before`` (default): the request is NOT performed, the fault answers
                    instead; ``after``: the request IS performed (its write happens, its
                    events fire) and then its answer is replaced by ``status`` or dropped:
                    a lost response. With ``after``, ``latency_ms`` is spent after the
                    request was performed (a write that succeeds but answers late)
    ``rate``        probability in 0..1 that a matching request is hit (default 1)
    ``retry_after`` seconds for the ``Retry-After`` header of a 429 (default 1)
    ``latency_ms``  delay added before answering (or before passing the request on)
    ``count``       hit only the next N matching requests, then the rule is spent
    ``seed``        reseed the probability generator (with or without a rule), so a run
                    with ``rate`` < 1 is reproducible
    → 201 with the rule ``{id, method, path, path_regex, status, drop, when, rate,
    retry_after, latency_ms, count, remaining, hits}``; 400 with ``{"error": ...}`` naming
    the bad field
``GET /api/v4/_sim/faults`` lists the rules (``hits`` counts the requests each one hit);
``DELETE /api/v4/_sim/faults`` removes them all and reseeds the generator with its default
seed (0); 204. ``DELETE /api/v4/_sim/faults/:id`` removes one rule; 204, 404 if unknown.

A hit answers like GitLab's front end: ``{"message": "503 Service Unavailable"}`` for 5xx,
``{"message": "429 Too Many Requests"}`` plus ``Retry-After`` for 429. Rules are checked
in creation order; the first one that hits with a status or ``drop`` decides; every
matching rule's latency applies (a ``before`` rule's before the request, an ``after``
rule's after it). A request that the handler refuses (4xx) under an ``after`` rule still
has its answer replaced: the client cannot tell, which is the point.

Streaming handlers (git smart HTTP) cannot have a started answer replaced; they ask
:func:`take_after_fault` for the request's ``after`` rule, perform the request without
answering, and answer with :func:`fault_answer`.
"""

from __future__ import annotations

import asyncio
import fnmatch
import random
import re
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from aiohttp import web

from sim.core.base import API, Sim, current_user
from sim.core.http import Params, created, fail, forbidden, no_content, not_found

ADMIN_PATH = f"{API}/_sim/"
METHODS = ("*", "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")
WHEN = ("before", "after")


@dataclass
class FaultRule:
    id: int
    method: str
    path: str | None
    path_regex: str | None
    status: int | None
    rate: float
    retry_after: int
    latency_ms: int
    count: int | None
    remaining: int | None
    drop: bool = False
    when: str = "before"
    hits: int = 0
    _compiled: re.Pattern[str] | None = field(default=None, repr=False)

    @property
    def fails(self) -> bool:
        """The rule answers instead of the handler (a status or a dropped connection)."""
        return self.status is not None or self.drop

    def matches(self, method: str, path: str) -> bool:
        if self.method not in ("*", method):
            return False
        if self._compiled is not None:
            return self._compiled.search(path) is not None
        return self.path is None or fnmatch.fnmatchcase(path, self.path)

    def json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "method": self.method,
            "path": self.path,
            "path_regex": self.path_regex,
            "status": self.status,
            "drop": self.drop,
            "when": self.when,
            "rate": self.rate,
            "retry_after": self.retry_after,
            "latency_ms": self.latency_ms,
            "count": self.count,
            "remaining": self.remaining,
            "hits": self.hits,
        }


@dataclass
class Fault:
    """What the rules decided for one request."""

    before_ms: int = 0
    after_ms: int = 0
    rule: FaultRule | None = None  # the rule that fails the request (before or after)
    taken: bool = False  # a streaming handler has answered for the ``after`` rule itself

    @property
    def after(self) -> FaultRule | None:
        return self.rule if self.rule is not None and self.rule.when == "after" else None


class FaultTable:
    def __init__(self) -> None:
        self.rules: list[FaultRule] = []
        self.rng = random.Random(0)
        self._next_id = 1

    def add(self, params: Params) -> FaultRule:
        rule = _parse_rule(params, self._next_id)
        self._next_id += 1
        self.rules.append(rule)
        return rule

    def remove(self, rule_id: int) -> bool:
        kept = [rule for rule in self.rules if rule.id != rule_id]
        removed = len(kept) != len(self.rules)
        self.rules = kept
        return removed

    def reset(self) -> None:
        self.rules.clear()
        self.rng.seed(0)

    def decide(self, method: str, path: str) -> Fault:
        fault = Fault()
        for rule in self.rules:
            if rule.remaining == 0 or not rule.matches(method, path):
                continue
            if rule.rate < 1 and self.rng.random() >= rule.rate:
                continue
            if rule.when == "after":
                fault.after_ms += rule.latency_ms
            else:
                fault.before_ms += rule.latency_ms
            if rule.remaining is not None:
                rule.remaining -= 1
            rule.hits += 1
            if fault.rule is None and rule.fails:
                fault.rule = rule
        return fault


FAULTS_KEY = web.AppKey("sim.faults", FaultTable)
_FAULT = web.RequestKey("sim.fault", Fault)  # for streaming handlers


def _parse_rule(params: Params, rule_id: int) -> FaultRule:
    method = (params.get_str("method", "*") or "*").upper()
    if method not in METHODS:
        fail(400, f"method must be one of {', '.join(METHODS)}", key="error")
    path, path_regex = params.get_str("path"), params.get_str("path_regex")
    if path is not None and path_regex is not None:
        fail(400, "give path (a glob) or path_regex (a regular expression), not both", key="error")
    compiled = None
    if path_regex is not None:
        try:
            compiled = re.compile(path_regex)
        except re.error as error:
            fail(400, f"path_regex is invalid: {error}", key="error")
    status = params.get_int("status")
    if status is not None and not 400 <= status <= 599:
        fail(400, "status must be an HTTP error status (400..599)", key="error")
    drop = _flag(params, "drop")
    if drop and status is not None:
        fail(400, "give status (an answer) or drop (no answer), not both", key="error")
    when = (params.get_str("when", "before") or "before").lower()
    if when not in WHEN:
        fail(
            400,
            "when must be before (not performed) or after (performed, answer lost)",
            key="error",
        )
    rate = _rate(params)
    latency_ms = params.get_int("latency_ms", 0) or 0
    count = params.get_int("count")
    if latency_ms < 0 or (count is not None and count < 1):
        fail(400, "latency_ms must be >= 0 and count >= 1", key="error")
    if status is None and not drop and latency_ms == 0:
        fail(400, "a fault needs a status, drop, a latency_ms, or a combination", key="error")
    return FaultRule(
        id=rule_id,
        method=method,
        path=path,
        path_regex=path_regex,
        status=status,
        rate=rate,
        retry_after=params.get_int("retry_after", 1) or 0,
        latency_ms=latency_ms,
        count=count,
        remaining=count,
        drop=drop,
        when=when,
        _compiled=compiled,
    )


def _flag(params: Params, name: str) -> bool:
    raw = params.raw(name)
    if raw is None or isinstance(raw, bool):
        return bool(raw)
    text = str(raw).lower()
    if text not in ("true", "false", "1", "0"):
        fail(400, f"{name} must be true or false", key="error")
    return text in ("true", "1")


def _rate(params: Params) -> float:
    raw = params.get_str("rate")
    if raw is None:
        return 1.0
    try:
        rate = float(raw)
    except ValueError:
        rate = -1.0
    if not 0.0 <= rate <= 1.0:
        fail(400, "rate must be a number between 0 and 1", key="error")
    return rate


def fault_response(rule: FaultRule) -> web.Response:
    assert rule.status is not None
    status = rule.status
    phrase = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Error"
    response = web.json_response({"message": f"{status} {phrase}"}, status=status)
    if status == 429:
        response.headers["Retry-After"] = str(rule.retry_after)
    return response


async def fault_answer(request: web.Request, rule: FaultRule) -> web.StreamResponse:
    """The rule's answer: its status, or no answer at all (the connection is closed)."""
    if not rule.drop:
        return fault_response(rule)
    if request.transport is not None:
        request.transport.abort()  # no status line, no body: a reset seen by the client
    # aiohttp finds the transport gone and writes nothing of this response.
    return web.Response(status=499)


def take_after_fault(request: web.Request) -> FaultRule | None:
    """For a streaming handler: the ``after`` rule hitting this request, if any; the
    handler performs the request, discards its answer and returns :func:`fault_answer`."""
    fault: Fault | None = request.get(_FAULT)
    if fault is None or fault.after is None:
        return None
    fault.taken = True
    return fault.after


@web.middleware
async def middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    if request.path.startswith(ADMIN_PATH):
        response: web.StreamResponse = await handler(request)
        return response
    fault = request.app[FAULTS_KEY].decide(request.method, request.path)
    if fault.before_ms:
        await asyncio.sleep(fault.before_ms / 1000)
    if fault.rule is not None and fault.after is None:
        return await fault_answer(request, fault.rule)
    request[_FAULT] = fault
    try:
        response = await handler(request)
    except web.HTTPException:
        if fault.after is None:
            raise
        response = web.Response(status=599)  # performed (or refused); the answer is lost anyway
    if fault.after_ms:
        await asyncio.sleep(fault.after_ms / 1000)
    if fault.after is None or fault.taken:
        return response
    if response.prepared:
        raise RuntimeError(f"{request.path}: a streamed answer cannot be replaced by a fault")
    return await fault_answer(request, fault.after)


def _require_admin(request: web.Request) -> FaultTable:
    if not current_user(request)["is_admin"]:
        forbidden()
    return request.app[FAULTS_KEY]


async def add_fault(request: web.Request) -> web.Response:
    table = _require_admin(request)
    params = await Params.of(request)
    seed = params.get_int("seed")
    if seed is not None:
        table.rng.seed(seed)
    rule_fields = (
        "method", "path", "path_regex", "status", "drop", "when", "latency_ms", "rate", "count",
    )  # fmt: skip
    if seed is not None and not any(params.has(name) for name in rule_fields):
        return created({"seed": seed})
    return created(table.add(params).json())


async def list_faults(request: web.Request) -> web.Response:
    table = _require_admin(request)
    return web.json_response([rule.json() for rule in table.rules])


async def reset_faults(request: web.Request) -> web.Response:
    _require_admin(request).reset()
    return no_content()


async def remove_fault(request: web.Request) -> web.Response:
    table = _require_admin(request)
    try:
        rule_id = int(request.match_info["id"])
    except ValueError:
        not_found("Fault rule Not Found")
    if not table.remove(rule_id):
        not_found("Fault rule Not Found")
    return no_content()


def setup(app: web.Application, sim: Sim) -> None:
    app[FAULTS_KEY] = FaultTable()
    path = f"{API}/_sim/faults"
    app.router.add_post(path, add_fault)
    app.router.add_get(path, list_faults)
    app.router.add_delete(path, reset_faults)
    app.router.add_delete(path + "/{id}", remove_fault)
