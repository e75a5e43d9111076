"""``--seed demo``: the demo project exists, is protected, is idempotent, and its CI test
job passes when its script runs in a fresh checkout."""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import yaml

from sim.core.app import RunningSim
from sim.core.base import DEVELOPER, MAINTAINER
from sim.core.seed import demo_files, seed_demo
from tests.support.sim_git import BOT_TOKEN, client, clone_url, git


def test_demo_files_include_the_ci_config_and_junit_script() -> None:
    files = demo_files()
    assert {".gitlab-ci.yml", ".gitignore", "ci/junit.py", "app/text.py", "README.md"} <= set(files)
    assert not [path for path in files if "__pycache__" in path or path.startswith("dot-")]
    config = yaml.safe_load(files[".gitlab-ci.yml"])
    assert config["stages"] == ["test"]
    assert config["test"]["artifacts"]["reports"]["junit"] == "report.xml"


def test_seed_creates_a_protected_demo_project_idempotently(demo_sim: RunningSim) -> None:
    root = client(demo_sim)
    project = root.projects.get("demo/app")
    levels = {m.username: m.access_level for m in project.members.list(get_all=True)}
    assert levels == {"crewline-bot": DEVELOPER, "maintainer": MAINTAINER}
    main = project.branches.get("main")
    assert main.protected and not main.developers_can_push and not main.developers_can_merge
    assert project.files.raw(".gitlab-ci.yml", ref="main").startswith(b"stages:")
    assert demo_sim.sim is not None
    again = demo_sim.call(seed_demo(demo_sim.sim, bot_level=DEVELOPER, maintainer_level=MAINTAINER))
    assert again == project.id
    assert project.branches.get("main").commit["id"] == main.commit["id"]
    assert len(project.commits.list(get_all=True)) == 1
    assert [p.name for p in project.protectedbranches.list()] == ["main"]


def test_demo_ci_test_job_passes_in_a_checkout(demo_sim: RunningSim, tmp_path: Path) -> None:
    work = tmp_path / "checkout"
    git("clone", "--quiet", clone_url(demo_sim, BOT_TOKEN), str(work))
    config = yaml.safe_load((work / ".gitlab-ci.yml").read_text())
    for line in config["test"]["script"]:
        command = line.replace("python3", sys.executable, 1)
        result = subprocess.run(
            command, shell=True, cwd=work, capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 0, result.stdout + result.stderr
    suite = ET.parse(work / config["test"]["artifacts"]["reports"]["junit"]).getroot()[0]
    assert int(suite.get("tests", "0")) >= 6
    assert suite.get("failures") == "0" and suite.get("errors") == "0"


def test_demo_ci_reports_a_broken_test(demo_sim: RunningSim, tmp_path: Path) -> None:
    work = tmp_path / "checkout"
    git("clone", "--quiet", clone_url(demo_sim, BOT_TOKEN), str(work))
    text = work / "app" / "text.py"
    text.write_text(text.read_text().replace('.strip("-")', ""))
    result = subprocess.run(
        [sys.executable, "ci/junit.py"], cwd=work, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 1
    suite = ET.parse(work / "report.xml").getroot()[0]
    failed = [case.get("name") for case in suite if case.find("failure") is not None]
    assert "test_punctuation_and_case" in failed
