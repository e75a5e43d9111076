"""Hot reads and writes as GitLab answered them: plain dicts from the JSON, without a python-gitlab object
per item (each builds its sub-managers) and without the deep copy ``.attributes`` makes of it
(docs/decisions/0042), over one keep-alive connection per thread where it serves
(forge/lean_http.py, decision 0049). They run inside :meth:`forge.client.GitLabClient.call`, so retries and
typed errors are the client's."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gitlab
import gitlab.exceptions
from gitlab.utils import EncodedId

from forge.lean_http import LeanHttp, Redirected, lean_of


def project_path(project: str, *parts: str | int) -> str:
    """The API path of ``project`` (a path such as ``demo/app``, encoded) and ``parts``."""
    return "/".join([f"/projects/{EncodedId(project)}", *map(str, parts)])


def raw_list(gl: gitlab.Gitlab, path: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    """Every page of the list at ``path`` as GitLab answered it, one dict per item."""
    items: Any = _lean(gl, lambda lean: lean.get_all(path, params))
    if items is _STEPPED_ASIDE:
        items = gl.http_list(path, params, get_all=True)
    if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
        raise gitlab.exceptions.GitlabParsingError(f"GitLab's answer to {path} is not a list")
    return [dict(item) for item in items]


def raw_page(gl: gitlab.Gitlab, path: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    """The first page of the list at ``path`` as GitLab answered it."""
    items: Any = _lean(gl, lambda lean: lean.get(path, params))
    if items is _STEPPED_ASIDE:
        items = gl.http_list(path, params, get_all=False, iterator=False)
    if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
        raise gitlab.exceptions.GitlabParsingError(f"GitLab's answer to {path} is not a list")
    return [dict(item) for item in items]


def raw_get(gl: gitlab.Gitlab, path: str) -> dict[str, Any]:
    """The object at ``path`` as GitLab answered it."""
    item = _lean(gl, lambda lean: lean.get(path))
    return _answered(path, gl.http_get(path) if item is _STEPPED_ASIDE else item)


_STEPPED_ASIDE = object()


def _lean(gl: gitlab.Gitlab, call: Callable[[LeanHttp], Any]) -> Any:
    """``call`` on ``gl``'s lean path (forge/lean_http.py); ``_STEPPED_ASIDE`` when it has
    none or GitLab redirected (nothing was performed: the caller sends it through
    python-gitlab instead)."""
    lean = lean_of(gl)
    if lean is None:
        return _STEPPED_ASIDE
    try:
        return call(lean)
    except Redirected:
        return _STEPPED_ASIDE


def _answered(path: str, answer: object) -> dict[str, Any]:
    if not isinstance(answer, dict):
        raise gitlab.exceptions.GitlabParsingError(f"GitLab's answer to {path} is not an object")
    return answer


def raw_post(gl: gitlab.Gitlab, path: str, data: dict[str, Any]) -> dict[str, Any]:
    """POST ``data`` to ``path``; the created object as GitLab answered it (no python-gitlab
    object built for a note or an issue update that is read once and dropped)."""
    item = _lean(gl, lambda lean: lean.post(path, data))
    return _answered(path, gl.http_post(path, post_data=data) if item is _STEPPED_ASIDE else item)


def raw_put(gl: gitlab.Gitlab, path: str, data: dict[str, Any]) -> dict[str, Any]:
    """PUT ``data`` to ``path``; the updated object as GitLab answered it."""
    item = _lean(gl, lambda lean: lean.put(path, data))
    return _answered(path, gl.http_put(path, post_data=data) if item is _STEPPED_ASIDE else item)
