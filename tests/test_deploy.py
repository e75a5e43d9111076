"""The deployment files (deploy/) and the architecture overview stay true to the code.

Offline and without a Docker daemon: every file is parsed (PyYAML for the YAML files, small
readers for the Dockerfile and the systemd unit), and every crewline command line they name
is checked against the real command: ``crewline <command> --help`` run as a subprocess from
this virtualenv must succeed and list the options used, and the whole command line must parse
with crewline's own parser to the handler of that command. Values that the code defines
(the webhook port, the health path, the secrets' variable names, the drain timeout) are read
from the code, never restated here.

The GitLab CI template is checked as GitLab needs it (rules, interruptible, a JUnit report)
and is also fed, unchanged, to the simulator's ``.gitlab-ci.yml`` parser: that parser ignores
``workflow``, ``rules``, ``interruptible``, ``image``, ``cache`` and ``expire_in`` without
error (documented in ``sim/pipelines/ci_config.py``), so no reduced copy is needed.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import tomllib
from pathlib import Path, PurePosixPath

import yaml

from bot.config import CONFIG_ENV, load_config
from forge.webhooks.settings import HEALTH_PATH
from sim.pipelines.ci_config import parse_ci_config
from tests.support.deploy import (
    DEFAULT_PORT,
    DEPLOY,
    DRAIN_SECONDS,
    ROOT,
    SECRET_FIELDS,
    assert_real_command,
    compose,
    compose_with_worker,
    container_toml,
    crewline_argv,
    docker_env,
    dockerfile,
    final_stage,
    named_volume,
    only,
    repo_paths,
    setting,
    unit,
    within,
)

# -- Dockerfile -----------------------------------------------------------------------------


def test_dockerfile_runs_a_real_crewline_command() -> None:
    stage = final_stage()
    assert json.loads(only(stage, "ENTRYPOINT")) == ["crewline"]
    command = json.loads(only(stage, "CMD"))
    assert command == ["run"]
    assert_real_command(command)


def test_dockerfile_exposes_the_configured_webhook_port_and_its_health_path() -> None:
    stage = final_stage()
    assert only(stage, "EXPOSE").split() == [str(DEFAULT_PORT)]
    check = only(stage, "HEALTHCHECK")
    url = re.search(r"http://127\.0\.0\.1:(\d+)(/[\w/-]*)", check)
    assert url, check
    assert (int(url.group(1)), url.group(2)) == (DEFAULT_PORT, HEALTH_PATH)
    assert check.split("CMD", 1)[1].split()[0] == '["python",', "exec form, the image's python"


def test_dockerfile_stops_with_the_signal_crewline_handles() -> None:
    """bot/serve.py handles SIGTERM (and Ctrl-C) with a clean stop; tests/test_cli_engine.py
    proves it on a real worker process."""
    assert only(final_stage(), "STOPSIGNAL") == "SIGTERM"


def test_dockerfile_builds_from_the_repository_as_a_non_root_user() -> None:
    instructions = dockerfile()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    # Every COPY source exists in the build context (the repository root), and every
    # package of the distribution is copied.
    copied = set()
    for keyword, rest in instructions:
        if keyword == "COPY" and not rest.startswith("--from"):
            *sources, _target = rest.split()
            for source in sources:
                assert (ROOT / source).exists(), f"COPY {source}: not in the repository"
                copied.add(source.rstrip("/").removeprefix("./"))
    includes = project["tool"]["setuptools"]["packages"]["find"]["include"]
    assert {name.rstrip("*") for name in includes} <= copied
    assert {"pyproject.toml", project["project"]["readme"], "setup.py"} <= copied
    assert set(project["build-system"]["backend-path"]) <= copied
    # The image installs the compiled guard, and proves it is the compiled one it got.
    assert any(
        keyword == "RUN" and re.search(r"CREWLINE_COMPILE=1 \S*pip install \.(\s|$)", rest)
        for keyword, rest in instructions
    )
    assert any(
        keyword == "RUN" and "forge.guard.compiled()" in rest for keyword, rest in instructions
    )
    # Python >= what pyproject requires, for every stage.
    wanted = tuple(
        int(part) for part in project["project"]["requires-python"].removeprefix(">=").split(".")
    )
    arg, _, default = only(instructions, "ARG").partition("=")
    for keyword, rest in instructions:
        if keyword == "FROM":
            image = rest.split()[0].replace(f"${{{arg}}}", default)
            version = re.fullmatch(r"python:(\d+)\.(\d+)-slim[\w-]*", image)
            assert version, image
            assert (int(version.group(1)), int(version.group(2))) >= wanted
    stage = final_stage()
    assert any(
        keyword == "RUN" and re.search(r"apt-get install .*\bgit\b", rest)
        for keyword, rest in stage
    )
    user = only(stage, "USER").split(":")[0]
    assert user not in ("root", "0")
    env = docker_env(stage)
    assert env[CONFIG_ENV] == "/etc/crewline/crewline.toml"
    (volume,) = json.loads(only(stage, "VOLUME"))
    assert env["HOME"] == volume, "agents run with crewline's HOME: it must be writable"


# -- compose.yaml ---------------------------------------------------------------------------


def test_compose_runs_crewline_built_from_the_dockerfile() -> None:
    document = compose()
    service = document["services"]["crewline"]
    context = (DEPLOY / service["build"]["context"]).resolve()
    assert context == ROOT
    assert (context / service["build"]["dockerfile"]).resolve() == DEPLOY / "Dockerfile"
    assert_real_command(service["command"])
    assert service["restart"] in ("always", "unless-stopped", "on-failure")
    assert service["stop_signal"] == only(final_stage(), "STOPSIGNAL")
    published = [str(port).rsplit(":", 1)[-1] for port in service["ports"]]
    assert published == [str(DEFAULT_PORT)]


def test_compose_mounts_the_configuration_read_only_and_the_data_in_a_volume() -> None:
    document = compose()
    service = document["services"]["crewline"]
    config = service["environment"][CONFIG_ENV]
    mounts = {mount.split(":")[1]: mount.split(":")[2:] for mount in service["volumes"]}
    assert mounts[config] == ["ro"]
    (data,) = json.loads(only(final_stage(), "VOLUME"))
    assert named_volume(service, data) in document["volumes"]


def test_compose_secrets_are_files_crewline_reads() -> None:
    document = compose()
    service = document["services"]["crewline"]
    for name, value in service["environment"].items():
        if name == CONFIG_ENV:
            continue
        field = name.removeprefix("CREWLINE_").lower()
        assert name.startswith("CREWLINE_") and field in SECRET_FIELDS, name
        assert field.endswith("_file"), f"{name}: prefer the _FILE variant with docker secrets"
        secret = PurePosixPath(value).name
        assert PurePosixPath(value).parent == PurePosixPath("/run/secrets")
        assert secret in service["secrets"] and secret in document["secrets"], secret
    required = {"CREWLINE_GITLAB_TOKEN_FILE", "CREWLINE_WEBHOOK_SECRET_FILE"}
    assert required <= set(service["environment"])


def test_compose_container_configuration_fits_the_image(tmp_path: Path) -> None:
    """The block compose.yaml asks users to add is a valid configuration that keeps every
    data path in the image's volume and listens where the port is published."""
    path = tmp_path / "crewline.toml"
    path.write_text(
        container_toml()
        + '\n[gitlab]\nurl = "https://gitlab.example.com"\n\n[[projects]]\npath = "group/app"\n',
        encoding="utf-8",
    )
    config = load_config(path)
    (data,) = json.loads(only(final_stage(), "VOLUME"))
    for where in (config.storage.path, config.workspaces.root, config.runs_dir):
        assert within(where, data), where
    assert config.webhook.host == "0.0.0.0"
    assert config.webhook.port == DEFAULT_PORT
    assert config.worker_id == compose()["services"]["crewline"]["hostname"]


def test_compose_commented_worker_is_an_extra_host_of_its_own() -> None:
    document = compose_with_worker()
    main, worker = document["services"]["crewline"], document["services"]["worker"]
    assert_real_command(worker["command"])
    assert worker["command"] == ["worker"]
    (data,) = json.loads(only(final_stage(), "VOLUME"))
    assert named_volume(worker, data) != named_volume(main, data)
    assert named_volume(worker, data) in document["volumes"]
    assert worker["hostname"] != main["hostname"]
    assert worker["healthcheck"] == {"disable": True}  # no webhook receiver, no /healthz
    assert "ports" not in worker
    assert worker["build"] == main["build"] and worker["image"] == main["image"]


# What bubblewrap needs inside a container (docs/decisions/0019-agent-sandbox.md).
SANDBOX_SECURITY_OPT = {"seccomp=unconfined", "apparmor=unconfined", "systempaths=unconfined"}


def test_the_image_ships_bubblewrap_and_compose_lets_it_build_its_namespaces(
    tmp_path: Path,
) -> None:
    assert any(
        keyword == "RUN" and re.search(r"apt-get install .*\bbubblewrap\b", rest)
        for keyword, rest in final_stage()
    )
    document = compose_with_worker()
    for name in ("crewline", "worker"):
        assert set(document["services"][name]["security_opt"]) == SANDBOX_SECURITY_OPT, name
        assert "privileged" not in document["services"][name]
        assert "cap_add" not in document["services"][name]
    # The container configuration insists on the sandbox: no silent fallback to none.
    path = tmp_path / "crewline.toml"
    path.write_text(
        container_toml()
        + '\n[gitlab]\nurl = "https://gitlab.example.com"\n\n[[projects]]\npath = "group/app"\n',
        encoding="utf-8",
    )
    assert load_config(path).sandbox.backend == "bwrap"


def test_ci_installs_bubblewrap_before_the_tests() -> None:
    lines = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    install = next(i for i, line in enumerate(lines) if "install -y -qq bubblewrap" in line)
    tests = next(i for i, line in enumerate(lines) if "pytest" in line)
    assert lines[install].startswith("command -v bwrap") and install < tests


# -- systemd unit ---------------------------------------------------------------------------


def test_unit_runs_a_real_crewline_command() -> None:
    service = unit()["Service"]
    argv = shlex.split(setting(service, "ExecStart"))
    assert PurePosixPath(argv[0]).is_absolute() and PurePosixPath(argv[0]).name == "crewline"
    assert argv[1:] == ["run", "--config", "/etc/crewline/crewline.toml"]
    assert_real_command(argv[1:])


def test_unit_is_hardened_but_leaves_the_agents_a_writable_home() -> None:
    service = unit()["Service"]
    assert setting(service, "User") not in ("root", "0")
    assert setting(service, "EnvironmentFile").startswith("/etc/crewline/")
    assert setting(service, "Restart") == "on-failure"
    assert setting(service, "NoNewPrivileges") == "yes"
    assert setting(service, "ProtectSystem") == "strict"
    assert setting(service, "PrivateTmp") == "yes"
    # These cover parts of /proc, and the kernel then refuses the agents' sandbox its own /proc.
    keys = {key for key, _ in service}
    assert not keys & {"ProtectKernelTunables", "ProtectKernelLogs", "ProtectProc"}
    env = dict(value.split("=", 1) for key, value in service if key == "Environment")
    home = env["HOME"]
    assert home in setting(service, "ReadWritePaths").split()
    assert f"/var/lib/{setting(service, 'StateDirectory')}" == home


def test_unit_stops_crewline_gracefully() -> None:
    service = unit()["Service"]
    assert setting(service, "KillSignal") == "SIGTERM"  # see the Dockerfile test above
    assert setting(service, "KillMode") == "mixed"
    stop = re.fullmatch(r"(\d+)s?", setting(service, "TimeoutStopSec"))
    assert stop and int(stop.group(1)) > DRAIN_SECONDS


def test_unit_passes_systemd_analyze(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    assert analyze is not None, (
        "systemd-analyze is needed to check the unit: apt-get install systemd"
    )
    assert len(crewline_argv()) == 1, "install crewline in this virtualenv: pip install -e ."
    text = (DEPLOY / "crewline.service").read_text(encoding="utf-8")
    local = tmp_path / "crewline.service"  # ExecStart must exist: use this virtualenv's
    local.write_text(text.replace("/opt/crewline/bin/crewline", crewline_argv()[0]), "utf-8")
    result = subprocess.run(
        [analyze, "verify", str(local)], capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 0 and not (result.stdout + result.stderr).strip(), (
        result.stdout + result.stderr
    )


# -- GitLab CI template ---------------------------------------------------------------------


def test_ci_template_gives_qa_a_junit_report_on_every_pipeline_it_needs() -> None:
    text = (DEPLOY / "gitlab-ci.template.yml").read_text(encoding="utf-8")
    document = yaml.safe_load(text)
    jobs = {
        name: body
        for name, body in document.items()
        if isinstance(body, dict) and "script" in body and not name.startswith(".")
    }
    reporting = {
        name: body for name, body in jobs.items() if body["artifacts"]["reports"].get("junit")
    }
    assert reporting, "no job publishes artifacts:reports:junit"
    for body in reporting.values():
        assert body["artifacts"]["when"] == "always"  # a failing run is the one QA reads
        assert body["interruptible"] is True
        assert "retry" not in body  # QA retries and records flakes itself
        junit = body["artifacts"]["reports"]["junit"]
        assert any(junit in line for line in body["script"]), "no script line writes it"
    rules = [rule.get("if", "") for rule in document["workflow"]["rules"]]
    assert any('$CI_PIPELINE_SOURCE == "merge_request_event"' in rule for rule in rules)
    assert any("$CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH" in rule for rule in rules)

    parsed = parse_ci_config(text)  # the simulator's runner accepts the very same file
    by_name = {job.name: job for job in parsed.jobs}
    for name, body in reporting.items():
        assert by_name[name].junit == [body["artifacts"]["reports"]["junit"]]
        assert by_name[name].artifacts_when == "always"
        assert by_name[name].script == body["script"]


# -- docs and README ------------------------------------------------------------------------


def test_architecture_names_only_files_that_exist() -> None:
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    named = repo_paths(text)
    assert len(named) > 40, sorted(named)
    missing = sorted(path for path in named if not (ROOT / path).exists())
    assert not missing, f"docs/architecture.md names files that do not exist: {missing}"
    links = re.findall(r"\]\(([^)#\s]+)\)", text)
    broken = [link for link in links if not (ROOT / "docs" / link).resolve().exists()]
    assert not broken, broken
    records = {f"decisions/{path.name}" for path in (ROOT / "docs" / "decisions").glob("*.md")}
    assert records, "no decision records"
    assert records <= set(links), f"not linked: {sorted(records - set(links))}"


def test_readme_deploy_section_points_at_real_files() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    match = re.search(r"^## Deploy\n(.*?)^## ", text, re.S | re.M)
    assert match and text[match.end() - 3 :].startswith("## Layout"), "Deploy before Layout"
    section = match.group(1)
    named = repo_paths(section)
    assert {f"deploy/{name}" for name in ("Dockerfile", "compose.yaml")} <= named
    assert {"deploy/crewline.service", "deploy/gitlab-ci.template.yml"} <= named
    for path in named - {"deploy/crewline.toml"}:  # the one the user creates
        assert (ROOT / path).exists(), path
    assert "docker build -f deploy/Dockerfile -t crewline ." in section
    assert "docker compose -f deploy/compose.yaml up -d" in section
    unit_exec = shlex.split(setting(unit()["Service"], "ExecStart"))[0]
    assert str(PurePosixPath(unit_exec).parent.parent) in section  # where it says to install
