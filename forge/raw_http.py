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


def raw_list(
    gl: gitlab.Gitlab, path: str, params: dict[str, Any], *, all_pages: bool = True
) -> list[dict[str, Any]]:
    """Every page of the list at ``path`` (or its first page only) as GitLab answered it,
    one dict per item."""
    lean_call: Callable[[LeanHttp], Any] = (
        (lambda lean: lean.get_all(path, params))
        if all_pages
        else (lambda lean: lean.get(path, params))
    )
    answer = _sent(gl, lean_call, lambda: gl.http_list(path, params, get_all=all_pages))
    return _items(path, answer)


def raw_get(gl: gitlab.Gitlab, path: str) -> dict[str, Any]:
    """The object at ``path`` as GitLab answered it."""
    return _object(path, _sent(gl, lambda lean: lean.get(path), lambda: gl.http_get(path)))


def raw_post(gl: gitlab.Gitlab, path: str, data: dict[str, Any]) -> dict[str, Any]:
    """POST ``data`` to ``path``; the created object as GitLab answered it (no python-gitlab
    object built for a note or an issue update that is read once and dropped)."""
    return _object(
        path,
        _sent(gl, lambda lean: lean.post(path, data), lambda: gl.http_post(path, post_data=data)),
    )


def raw_put(gl: gitlab.Gitlab, path: str, data: dict[str, Any]) -> dict[str, Any]:
    """PUT ``data`` to ``path``; the updated object as GitLab answered it."""
    return _object(
        path,
        _sent(gl, lambda lean: lean.put(path, data), lambda: gl.http_put(path, post_data=data)),
    )


def _sent(gl: gitlab.Gitlab, lean_call: Callable[[LeanHttp], Any], usual: Callable[[], Any]) -> Any:
    """GitLab's answer: over ``gl``'s lean path (forge/lean_http.py) when it has one, else,
    or when GitLab redirected (nothing was performed), through python-gitlab (``usual``)."""
    lean = lean_of(gl)
    if lean is not None:
        try:
            return lean_call(lean)
        except Redirected:
            pass
    return usual()


def _items(path: str, answer: object) -> list[dict[str, Any]]:
    if not isinstance(answer, list) or not all(isinstance(item, dict) for item in answer):
        raise gitlab.exceptions.GitlabParsingError(f"GitLab's answer to {path} is not a list")
    return [dict(item) for item in answer]


def _object(path: str, answer: object) -> dict[str, Any]:
    if not isinstance(answer, dict):
        raise gitlab.exceptions.GitlabParsingError(f"GitLab's answer to {path} is not an object")
    return answer
