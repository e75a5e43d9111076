"""HTTP helpers shared by every simulator route module: GitLab-shaped errors, request
parameters (query string, JSON or form body), pagination headers and timestamps."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, NoReturn

from aiohttp import web


def now_iso() -> str:
    """GitLab's timestamp format: ``2016-01-04T15:31:51.081Z``."""
    return iso(datetime.now(UTC))


def iso(moment: datetime) -> str:
    return (
        moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    )


def parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def fail(status: int, message: Any, *, key: str = "message") -> NoReturn:
    """Raise an HTTP error with GitLab's body: ``{"message": ...}`` or ``{"error": ...}``."""
    raise _http_error(status, {key: message})


def _http_error(status: int, body: dict[str, Any]) -> web.HTTPException:
    error = web.HTTPException(text=json.dumps(body), content_type="application/json")
    error.set_status(status)
    return error


def not_found(what: str = "Not found") -> NoReturn:
    fail(404, f"404 {what}")


def forbidden() -> NoReturn:
    fail(403, "403 Forbidden")


def missing(name: str) -> NoReturn:
    fail(400, f"{name} is missing", key="error")


def invalid(name: str) -> NoReturn:
    fail(400, f"{name} is invalid", key="error")


class Params:
    """Parameters of a request, merged from the query string and the body.

    python-gitlab sends GET parameters in the query string and POST/PUT parameters as
    a JSON body; curl users send forms. Array parameters arrive as ``name[]=a&name[]=b``,
    ``name=a,b`` or a JSON list; :meth:`list` accepts all three.
    """

    def __init__(self, query: dict[str, list[str]], body: dict[str, Any]) -> None:
        self._query = query
        self._body = body

    @classmethod
    async def of(cls, request: web.Request) -> Params:
        query: dict[str, list[str]] = {}
        for key, value in request.query.items():
            query.setdefault(key, []).append(value)
        body: dict[str, Any] = {}
        if request.can_read_body:
            if request.content_type == "application/json":
                try:
                    loaded = await request.json()
                except ValueError:
                    fail(400, "400 Bad request - malformed JSON")
                if isinstance(loaded, dict):
                    body = loaded
            elif request.content_type in (
                "application/x-www-form-urlencoded",
                "multipart/form-data",
            ):
                form = await request.post()
                for key in form:
                    values = form.getall(key)
                    body[key] = values if key.endswith("[]") or len(values) > 1 else values[0]
        return cls(query, body)

    def has(self, name: str) -> bool:
        return name in self._body or name in self._query or f"{name}[]" in self._query

    def raw(self, name: str) -> Any:
        if name in self._body:
            return self._body[name]
        if f"{name}[]" in self._body:
            return self._body[f"{name}[]"]
        if name in self._query:
            return self._query[name][-1]
        if f"{name}[]" in self._query:
            return self._query[f"{name}[]"]
        return None

    def get_str(self, name: str, default: str | None = None) -> str | None:
        value = self.raw(name)
        if value is None:
            return default
        return (
            value
            if isinstance(value, str)
            else json.dumps(value)
            if isinstance(value, dict)
            else str(value)
        )

    def required(self, name: str) -> str:
        value = self.get_str(name)
        if value is None or value == "":
            missing(name)
        return value

    def get_int(self, name: str, default: int | None = None) -> int | None:
        value = self.raw(name)
        if value is None or value == "":
            return default
        try:
            return int(value)
        except (TypeError, ValueError):
            invalid(name)

    def get_bool(self, name: str, default: bool = False) -> bool:
        value = self.raw(name)
        if value is None:
            return default
        if isinstance(value, bool):
            return value
        return str(value).lower() in ("1", "true", "yes", "on")

    def get_list(self, name: str) -> list[str] | None:
        """A list parameter, or None when absent. ``labels=""`` is an empty list."""
        value = self.raw(name)
        if value is None:
            return None
        if isinstance(value, list):
            items: list[str] = []
            for item in value:
                items.extend(str(item).split(",") if name == "labels" else [str(item)])
            return [item.strip() for item in items if str(item).strip()]
        return [part.strip() for part in str(value).split(",") if part.strip()]

    def get_int_list(self, name: str) -> list[int] | None:
        values = self.get_list(name)
        if values is None:
            return None
        try:
            return [int(v) for v in values]
        except ValueError:
            invalid(name)

    def json(self) -> dict[str, Any]:
        return dict(self._body)


def paginate(request: web.Request, items: Sequence[Any], *, status: int = 200) -> web.Response:
    """Slice ``items`` by ``page``/``per_page`` and answer with GitLab's pagination headers."""
    try:
        page = max(1, int(request.query.get("page", "1")))
        per_page = min(100, max(1, int(request.query.get("per_page", "20"))))
    except ValueError:
        fail(400, "page is invalid", key="error")
    total = len(items)
    total_pages = max(1, -(-total // per_page))
    start = (page - 1) * per_page
    response = web.json_response(list(items[start : start + per_page]), status=status)
    headers = response.headers
    headers["X-Page"] = str(page)
    headers["X-Per-Page"] = str(per_page)
    headers["X-Total"] = str(total)
    headers["X-Total-Pages"] = str(total_pages)
    headers["X-Next-Page"] = str(page + 1) if page < total_pages else ""
    headers["X-Prev-Page"] = str(page - 1) if page > 1 else ""
    links = []
    if page < total_pages:
        links.append(f'<{_page_url(request, page + 1, per_page)}>; rel="next"')
    if page > 1:
        links.append(f'<{_page_url(request, page - 1, per_page)}>; rel="prev"')
    links.append(f'<{_page_url(request, 1, per_page)}>; rel="first"')
    links.append(f'<{_page_url(request, total_pages, per_page)}>; rel="last"')
    headers["Link"] = ", ".join(links)
    return response


def _page_url(request: web.Request, page: int, per_page: int) -> str:
    query = dict(request.query)
    query["page"] = str(page)
    query["per_page"] = str(per_page)
    return str(request.url.with_query(query))


def created(body: Any) -> web.Response:
    return web.json_response(body, status=201)


def no_content() -> web.Response:
    return web.Response(status=204)
