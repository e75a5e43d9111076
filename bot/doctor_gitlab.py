"""``crewline doctor``'s GitLab checks: the token (valid, not revoked, with the api scope),
the bot's access level on each project, the workflow labels, and where webhooks must reach.
Each failing line says what to do."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import gitlab
from pydantic import SecretStr

from bot.config import CrewlineConfig
from bot.doctor_check import Check

DEVELOPER = 30
NEW_TOKEN = (
    "create a personal access token with the `api` scope for the bot user and set "
    "CREWLINE_GITLAB_TOKEN (or CREWLINE_GITLAB_TOKEN_FILE)"
)


def check_gitlab(config: CrewlineConfig, token: SecretStr | None) -> list[Check]:
    if token is None or not token.get_secret_value():
        return []  # the secrets check already says it is missing
    gl = gitlab.Gitlab(
        config.gitlab.url,
        private_token=token.get_secret_value(),
        timeout=config.gitlab.timeout_seconds,
        ssl_verify=config.gitlab.ssl_verify,
        retry_transient_errors=False,
    )
    try:
        user = _get(gl, "/user")
    except gitlab.GitlabAuthenticationError as error:
        return [
            Check(
                "GitLab token",
                False,
                f"rejected by {config.gitlab.url} (HTTP {error.response_code}: invalid, expired "
                f"or revoked): {NEW_TOKEN}",
            )
        ]
    except (gitlab.GitlabError, OSError) as error:
        return [
            Check(
                "GitLab token",
                False,
                f"{config.gitlab.url} did not answer /user ({error}): check gitlab.url and "
                "that this host can reach it",
            )
        ]
    checks = [_token(gl, str(user.get("username")))]
    for project in config.projects:
        checks.append(_access(gl, project.path, int(user["id"]), str(user.get("username"))))
        checks.append(_labels(gl, project.path, config))
    checks.append(_webhook_hint(config))
    return checks


def _get(gl: gitlab.Gitlab, path: str) -> dict[str, Any]:
    data = gl.http_get(path)
    assert isinstance(data, dict)
    return data


def _token(gl: gitlab.Gitlab, username: str) -> Check:
    try:
        token = _get(gl, "/personal_access_tokens/self")
    except gitlab.GitlabGetError as error:
        return Check(
            "GitLab token",
            True,
            f"valid for @{username} (scopes not readable here: HTTP {error.response_code}; "
            "GitLab before 15.5 or not a personal access token)",
        )
    scopes = [str(scope) for scope in token.get("scopes") or []]
    if token.get("revoked") or token.get("active") is False:
        return Check("GitLab token", False, f"revoked or expired: {NEW_TOKEN}")
    if "api" not in scopes:
        return Check(
            "GitLab token",
            False,
            f"scopes {', '.join(scopes) or 'none'} lack `api` (crewline writes labels, notes, "
            f"branches and merge requests): {NEW_TOKEN}",
        )
    expires = token.get("expires_at") or "never"
    return Check(
        "GitLab token",
        True,
        f"valid for @{username}, scopes {', '.join(scopes)}, expires {expires}",
    )


def _access(gl: gitlab.Gitlab, project: str, user_id: int, username: str) -> Check:
    name = f"GitLab access {project}"
    try:
        member = _get(gl, f"/projects/{quote(project, safe='')}/members/all/{user_id}")
    except gitlab.GitlabGetError as error:
        return Check(
            name,
            False,
            f"@{username} is not a member (HTTP {error.response_code}): add it to {project} as "
            "Developer or higher",
        )
    level = int(member.get("access_level") or 0)
    if level < DEVELOPER:
        return Check(
            name,
            False,
            f"@{username} has access level {level}; crewline pushes branches and sets labels: "
            "make it Developer (30) or higher",
        )
    return Check(name, True, f"@{username} has access level {level}")


def _labels(gl: gitlab.Gitlab, project: str, config: CrewlineConfig) -> Check:
    name = f"GitLab labels {project}"
    wanted = [state.label for state in config.workflow.build().states.values()]
    try:
        listed = gl.http_list(f"/projects/{quote(project, safe='')}/labels", get_all=True)
    except gitlab.GitlabError as error:
        return Check(name, False, f"cannot list labels ({error}): check the project path")
    have = {str(label.get("name")) for label in listed if isinstance(label, dict)}
    missing = [label for label in wanted if label not in have]
    if missing:
        return Check(
            name,
            False,
            f"{len(missing)} workflow label(s) missing ({', '.join(missing[:4])}"
            f"{', ...' if len(missing) > 4 else ''}): run `crewline labels sync`",
        )
    return Check(name, True, f"all {len(wanted)} workflow labels exist")


def _webhook_hint(config: CrewlineConfig) -> Check:
    hook = config.webhook
    if not hook.enabled:
        return Check("webhook", True, "off: crewline polls GitLab (slower to react)")
    where = f"http://{hook.host}:{hook.port}{hook.path}"
    if hook.host in ("127.0.0.1", "localhost", "::1"):
        return Check(
            "webhook",
            True,
            f"listening on {where}: only this host can reach it; GitLab must be able to POST "
            "there (a reverse proxy, or webhook.host = 0.0.0.0), with the secret token set",
        )
    return Check(
        "webhook",
        True,
        f"listening on {where}: add it as the project's webhook URL in GitLab (issues, notes, "
        "merge requests, pipelines) with CREWLINE_WEBHOOK_SECRET as its secret token",
    )
