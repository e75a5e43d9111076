"""Hot reads and writes as GitLab answered them: plain dicts from the JSON, without a python-gitlab object
per item (each builds its sub-managers) and without the deep copy ``.attributes`` makes of it
(docs/decisions/0042). They run inside :meth:`forge.client.GitLabClient.call`, so retries and
typed errors are the client's."""

from __future__ import annotations

from typing import Any

import gitlab
import gitlab.exceptions
from gitlab.utils import EncodedId


def project_path(project: str, *parts: str | int) -> str:
    """The API path of ``project`` (a path such as ``demo/app``, encoded) and ``parts``."""
    return "/".join([f"/projects/{EncodedId(project)}", *map(str, parts)])


def raw_list(gl: gitlab.Gitlab, path: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    """Every page of the list at ``path`` as GitLab answered it, one dict per item."""
    items = gl.http_list(path, params, get_all=True)
    if not isinstance(items, list):
        raise gitlab.exceptions.GitlabParsingError(f"GitLab's answer to {path} is not a list")
    return [dict(item) for item in items]


def raw_get(gl: gitlab.Gitlab, path: str) -> dict[str, Any]:
    """The object at ``path`` as GitLab answered it."""
    return _answered(path, gl.http_get(path))


def _answered(path: str, answer: object) -> dict[str, Any]:
    if not isinstance(answer, dict):
        raise gitlab.exceptions.GitlabParsingError(f"GitLab's answer to {path} is not an object")
    return answer


def raw_post(gl: gitlab.Gitlab, path: str, data: dict[str, Any]) -> dict[str, Any]:
    """POST ``data`` to ``path``; the created object as GitLab answered it (no python-gitlab
    object built for a note or an issue update that is read once and dropped)."""
    return _answered(path, gl.http_post(path, post_data=data))


def raw_put(gl: gitlab.Gitlab, path: str, data: dict[str, Any]) -> dict[str, Any]:
    """PUT ``data`` to ``path``; the updated object as GitLab answered it."""
    return _answered(path, gl.http_put(path, post_data=data))
