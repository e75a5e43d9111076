"""Fault injection for reliability tests: make chosen requests fail or slow down.

Administrator-only endpoints (never faulted themselves):

``POST /api/v4/_sim/faults`` adds a rule (JSON or form):
    ``method``      HTTP method or ``*`` (default ``*``)
    ``path``        fnmatch pattern on the request path, e.g. ``/api/v4/projects/*/issues*``
    ``path_regex``  or a regular expression searched in the path (give one or neither;
                    neither matches every path)
    ``status``      the error status to answer (400..599); omit for latency only
    ``rate``        probability in 0..1 that a matching request is hit (default 1)
    ``retry_after`` seconds for the ``Retry-After`` header of a 429 (default 1)
    ``latency_ms``  delay added before answering (or before passing the request on)
    ``count``       hit only the next N matching requests, then the rule is spent
    ``seed``        reseed the probability generator (with or without a rule), so a run
                    with ``rate`` < 1 is reproducible
    → 201 with the rule ``{id, method, path, path_regex, status, rate, retry_after,
    latency_ms, count, remaining, hits}``
``GET /api/v4/_sim/faults`` lists the rules; ``DELETE /api/v4/_sim/faults`` removes them all
and reseeds the generator with its default seed (0); 204.

A hit answers like GitLab's front end: ``{"message": "503 Service Unavailable"}`` for 5xx,
``{"message": "429 Too Many Requests"}`` plus ``Retry-After`` for 429. Rules are checked
in creation order; the first one that hits decides; every matching rule's latency applies.
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

from forge.sim.core import API, Sim, current_user
from forge.sim.http import Params, created, fail, forbidden, no_content

ADMIN_PATH = f"{API}/_sim/"
METHODS = ("*", "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


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
    hits: int = 0
    _compiled: re.Pattern[str] | None = field(default=None, repr=False)

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
            "rate": self.rate,
            "retry_after": self.retry_after,
            "latency_ms": self.latency_ms,
            "count": self.count,
            "remaining": self.remaining,
            "hits": self.hits,
        }


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

    def reset(self) -> None:
        self.rules.clear()
        self.rng.seed(0)

    def decide(self, method: str, path: str) -> tuple[int, FaultRule | None]:
        """(total latency in ms, the rule that fails this request or None)."""
        latency, hit = 0, None
        for rule in self.rules:
            if rule.remaining == 0 or not rule.matches(method, path):
                continue
            if rule.rate < 1 and self.rng.random() >= rule.rate:
                continue
            latency += rule.latency_ms
            if rule.remaining is not None:
                rule.remaining -= 1
            rule.hits += 1
            if hit is None and rule.status is not None:
                hit = rule
        return latency, hit


FAULTS_KEY = web.AppKey("sim.faults", FaultTable)


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
    rate = _rate(params)
    latency_ms = params.get_int("latency_ms", 0) or 0
    count = params.get_int("count")
    if latency_ms < 0 or (count is not None and count < 1):
        fail(400, "latency_ms must be >= 0 and count >= 1", key="error")
    if status is None and latency_ms == 0:
        fail(400, "a fault needs a status, a latency_ms, or both", key="error")
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
        _compiled=compiled,
    )


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


@web.middleware
async def middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    if not request.path.startswith(ADMIN_PATH):
        latency_ms, rule = request.app[FAULTS_KEY].decide(request.method, request.path)
        if latency_ms:
            await asyncio.sleep(latency_ms / 1000)
        if rule is not None:
            return fault_response(rule)
    response: web.StreamResponse = await handler(request)
    return response


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
    rule_fields = ("method", "path", "path_regex", "status", "latency_ms", "rate", "count")
    if seed is not None and not any(params.has(name) for name in rule_fields):
        return created({"seed": seed})
    return created(table.add(params).json())


async def list_faults(request: web.Request) -> web.Response:
    table = _require_admin(request)
    return web.json_response([rule.json() for rule in table.rules])


async def reset_faults(request: web.Request) -> web.Response:
    _require_admin(request).reset()
    return no_content()


def setup(app: web.Application, sim: Sim) -> None:
    app[FAULTS_KEY] = FaultTable()
    path = f"{API}/_sim/faults"
    app.router.add_post(path, add_fault)
    app.router.add_get(path, list_faults)
    app.router.add_delete(path, reset_faults)
