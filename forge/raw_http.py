"""Hot reads as GitLab answered them: plain dicts from the JSON, without a python-gitlab object
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
    item = gl.http_get(path)
    if not isinstance(item, dict):
        raise gitlab.exceptions.GitlabParsingError(f"GitLab's answer to {path} is not an object")
    return item
