"""The simulator core, driven by python-gitlab over loopback HTTP."""

from __future__ import annotations

import gitlab
import pytest
import requests

from sim.core.app import RunningSim


def client(sim: RunningSim, token: str = "sim-root-token") -> gitlab.Gitlab:
    return gitlab.Gitlab(sim.base_url, private_token=token)


def test_version_needs_a_token_and_answers_with_one(sim: RunningSim) -> None:
    anonymous = requests.get(f"{sim.base_url}/api/v4/version", timeout=5)
    assert anonymous.status_code == 401
    assert anonymous.json() == {"message": "401 Unauthorized"}
    version, _ = client(sim).version()
    assert version.startswith("17.")


def test_seeded_users_authenticate_with_their_tokens(sim: RunningSim) -> None:
    for token, username in [
        ("sim-root-token", "root"),
        ("sim-bot-token", "crewline-bot"),
        ("sim-maintainer-token", "maintainer"),
    ]:
        gl = client(sim, token)
        gl.auth()
        assert gl.user is not None and gl.user.username == username
    bearer = requests.get(
        f"{sim.base_url}/api/v4/user", headers={"Authorization": "Bearer sim-bot-token"}, timeout=5
    )
    assert bearer.json()["username"] == "crewline-bot"


def test_unknown_token_is_refused(sim: RunningSim) -> None:
    with pytest.raises(gitlab.exceptions.GitlabAuthenticationError) as error:
        client(sim, "nope").auth()
    assert error.value.response_code == 401


def test_projects_by_id_and_encoded_path_with_membership(sim: RunningSim) -> None:
    root = client(sim)
    project = root.projects.create({"name": "app", "path": "app"})
    assert project.path_with_namespace == "root/app"
    bot = client(sim, "sim-bot-token")
    bot.auth()
    with pytest.raises(gitlab.exceptions.GitlabGetError) as hidden:
        bot.projects.get("root/app")
    assert hidden.value.response_code == 404
    project.members.create({"user_id": bot.user.id, "access_level": 30})  # type: ignore[union-attr]
    by_path = bot.projects.get("root/app")
    assert by_path.id == project.id
    assert by_path.permissions["project_access"]["access_level"] == 30
    member = project.members_all.get(bot.user.id)  # type: ignore[union-attr]
    assert member.access_level == 30
