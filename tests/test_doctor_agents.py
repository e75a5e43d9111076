"""`crewline doctor` on what a user would otherwise find at 3 a.m.: an agent CLI of a version
crewline was not tested with, one that is not logged in, and a revoked GitLab token each get
one failing line that says what to do. The CLIs are fake executables answering `--version`,
`--help` and the login status as the real ones do; GitLab is the simulator."""

from __future__ import annotations

import sys
from pathlib import Path

import gitlab

from sim.core.app import RunningSim
from tests.support.forge import make_project
from tests.test_cli import crewline

CONFIG = """
[gitlab]
url = "{url}"
max_retries = 0

[[projects]]
path = "group/app"

[storage]
path = "state/crewline.sqlite3"

[webhook]
enabled = false

[agents.claude]
kind = "claude"
command = "{bin}/claude"

[agents.codex]
kind = "codex"
command = "{bin}/codex"
"""

# Claude Code 1.0: too old (crewline was tested with 2.1), logged in.
CLAUDE = """\
args = sys.argv[1:]
if args == ["--version"]:
    print("1.0.3 (Claude Code)")
elif args == ["--help"]:
    print("  -p, --print  --output-format <format>  --permission-mode <mode>")
    print("  -r, --resume [value]  --model <model>")
elif args == ["auth", "status"]:
    print('{"loggedIn": true, "authMethod": "api_key"}')
else:
    sys.exit(2)
"""
# Codex 0.171.0, the tested version, as `codex login status` prints it logged out.
CODEX = """\
args = sys.argv[1:]
if args == ["--version"]:
    print("codex-cli 0.171.0")
elif args == ["exec", "--help"]:
    print("  --json  --skip-git-repo-check  -s, --sandbox <SANDBOX_MODE>  -m, --model <MODEL>")
elif args == ["login", "status"]:
    print("Not logged in", file=sys.stderr)
    sys.exit(1)
else:
    sys.exit(2)
"""


def fake(directory: Path, name: str, body: str) -> None:
    path = directory / name
    path.write_text(f"#!{sys.executable}\nimport sys\n{body}", encoding="utf-8")
    path.chmod(0o755)


def test_a_wrong_version_a_missing_login_and_a_revoked_token_fail_one_line_each(
    sim: RunningSim, tmp_path: Path
) -> None:
    make_project(sim, "group/app")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake(bin_dir, "claude", CLAUDE)
    fake(bin_dir, "codex", CODEX)
    config = tmp_path / "crewline.toml"
    config.write_text(CONFIG.format(url=sim.base_url, bin=bin_dir), encoding="utf-8")
    token = sim.config.bot_token
    gl = gitlab.Gitlab(sim.base_url, private_token=token)
    assert gl.http_get("/personal_access_tokens/self")["scopes"] == ["api"]  # type: ignore[index]
    gl.http_delete("/personal_access_tokens/self")  # the bot's token is revoked

    result = crewline("doctor", "--config", str(config), env={"CREWLINE_GITLAB_TOKEN": token})

    assert result.returncode == 1
    failing = [line for line in result.stdout.splitlines() if line.startswith("FAIL")]
    assert len(failing) == 3, result.stdout
    assert failing[0].startswith("FAIL GitLab token: rejected by")
    assert "(HTTP 401: invalid, expired or revoked): create a personal access token" in failing[0]
    assert failing[1].startswith("FAIL agent claude version: claude 1.0.3 is outside the range")
    assert ">= 2.1.0, < 2.2.0 (tested with 2.1.197)" in failing[1]
    assert "npm install -g @anthropic-ai/claude-code@2.1.197" in failing[1]
    assert failing[2].startswith("FAIL agent codex login: not logged in (Not logged in): run")
    assert "`codex login`" in failing[2]
    assert "OK   agent claude login: logged in" in result.stdout
    assert "OK   agent codex version: codex 0.171.0" in result.stdout
    assert "OK   agent codex flags: all 4 flags crewline passes" in result.stdout
