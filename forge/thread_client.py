"""One pool thread's GitLab clients: python-gitlab with its handles built once and a
cookie-less session that read the environment once, and beside it the lean path of the hot
raw calls (forge/lean_http.py, decision 0049). Used by :class:`forge.client.GitLabClient`,
which gives each of its threads one."""

from __future__ import annotations

import logging
import os
import ssl
from collections import OrderedDict
from collections.abc import Callable
from http.cookiejar import CookiePolicy
from typing import Any

import gitlab
import requests
from gitlab.v4.objects import Project, ProjectIssue, ProjectIssueManager, ProjectManager

from forge.lean_http import AnswerHook, LeanHttp, attach, tls_context
from forge.settings import GitLabSettings

log = logging.getLogger(__name__)

_ISSUES_KEPT = 256  # lazy issue handles kept per project and thread (a handle is ~10 managers)


class _CachedIssues(ProjectIssueManager):
    """A project's issue manager that builds a lazy issue handle once and hands it out again.
    A lazy handle holds only the iid and its sub-managers (notes, award emoji, label events):
    nothing a call changes, so sharing it between calls on one thread is safe."""

    def __init__(self, gl: gitlab.Gitlab, parent: Project) -> None:
        super().__init__(gl, parent=parent)
        self._lazy: OrderedDict[int | str, ProjectIssue] = OrderedDict()

    def get(self, id: str | int, lazy: bool = False, **kwargs: Any) -> ProjectIssue:
        if not lazy or kwargs:
            return super().get(id, lazy=lazy, **kwargs)
        issue = self._lazy.get(id)
        if issue is None:
            issue = super().get(id, lazy=True)
            self._lazy[id] = issue
            if len(self._lazy) > _ISSUES_KEPT:
                self._lazy.popitem(last=False)
        else:
            self._lazy.move_to_end(id)
        return issue


class _CachedProjects(ProjectManager):
    """``gl.projects`` with lazy project handles built once (a handful of projects per host)."""

    def __init__(self, gl: gitlab.Gitlab) -> None:
        super().__init__(gl)
        self._lazy: dict[int | str, Project] = {}

    def get(self, id: str | int, lazy: bool = False, **kwargs: Any) -> Project:
        if not lazy or kwargs:
            return super().get(id, lazy=lazy, **kwargs)
        project = self._lazy.get(id)
        if project is None:
            project = super().get(id, lazy=True)
            # RESTObject keeps managers in __dict__ (its __setattr__ would record an update).
            project.__dict__["issues"] = _CachedIssues(self.gitlab, project)
            self._lazy[id] = project
        return project


class _NoCookies(CookiePolicy):
    """Neither store nor send cookies."""

    netscape = True
    rfc2965 = hide_cookie2 = False

    def set_ok(self, cookie: Any, request: Any) -> bool:
        return False

    def return_ok(self, cookie: Any, request: Any) -> bool:
        return False

    def domain_return_ok(self, domain: str, request: Any) -> bool:
        return False

    def path_return_ok(self, path: str, request: Any) -> bool:
        return False


def build_gitlab(
    settings: GitLabSettings,
    token: str,
    hooks: list[Callable[..., Any]],
    *,
    answered: AnswerHook | None = None,
) -> gitlab.Gitlab:
    """One thread's python-gitlab client: cached handles, a cookie-less session, ``hooks``
    on every response, and the environment's proxy and CA bundle read once. With
    ``answered`` (told of every answer), its raw calls take the lean path
    (forge/lean_http.py) unless a proxy stands between this host and GitLab."""
    session = requests.Session()
    session.cookies.set_policy(_NoCookies())
    session.hooks["response"].extend(hooks)
    verify = _environment_once(session, settings)
    client = gitlab.Gitlab(
        settings.url,
        private_token=token,
        timeout=settings.timeout_seconds,
        ssl_verify=verify,
        retry_transient_errors=False,
        session=session,
        user_agent="crewline",
    )
    client.projects = _CachedProjects(client)
    # Only when requests would send straight to GitLab: a proxy that applies is its business.
    if answered is not None and requests.utils.select_proxy(settings.url, session.proxies) is None:
        try:
            tls = tls_context(verify) if settings.url.startswith("https:") else None
        except (OSError, ssl.SSLError) as error:  # requests will say so on every call
            log.warning("GitLab's CA bundle %s cannot be read (%s): no lean path", verify, error)
        else:
            lean = LeanHttp(
                settings.url, token, timeout=settings.timeout_seconds, tls=tls, on_answer=answered
            )
            attach(client, lean)
    return client


def _environment_once(session: requests.Session, settings: GitLabSettings) -> bool | str:
    """Resolve what requests reads from the environment, for GitLab's URL, once; return the
    ``ssl_verify`` to use.

    With ``trust_env`` (its default) requests scans the whole environment for proxies and
    ``NO_PROXY`` and looks for ``~/.netrc`` on every request: two environment walks and two
    ``stat`` calls per GitLab call, more CPU than the rest of the request. Every call goes to
    the one GitLab host, so the answer is the same each time: the proxies (``HTTPS_PROXY``,
    ``NO_PROXY`` …) and the CA bundle (``REQUESTS_CA_BUNDLE``, ``CURL_CA_BUNDLE``) are read
    here; ``.netrc`` is not used (the token authenticates)."""
    session.proxies.update(requests.utils.get_environ_proxies(settings.url))
    session.trust_env = False
    if not settings.ssl_verify:
        return False
    return os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
