"""The subset of ``.gitlab-ci.yml`` the simulator's runner understands, parsed with PyYAML.

Understood, as GitLab documents them:

- top level: ``stages`` (default ``build``, ``test``, ``deploy``; ``.pre`` and ``.post`` are
  always there), ``variables``, ``before_script``/``after_script`` and the same two under
  ``default:``; every other mapping key not starting with ``.`` is a job.
- jobs: ``stage`` (default ``test``), ``script`` (a string or nested lists of strings),
  ``before_script``, ``after_script``, ``variables`` (scalars, or ``{value: ...}``),
  ``artifacts:reports:junit`` (a glob or a list of globs, relative to the checkout) with
  ``artifacts:when`` (``on_success`` default, ``on_failure``, ``always``), ``allow_failure``
  (a boolean), ``when`` (``on_success``, ``on_failure``, ``always``, ``manual``), ``timeout``
  (``90``, ``30s``, ``10m``, ``1h 30m``, ``2 minutes``). A ``when: manual`` job waits as
  ``manual`` until someone plays it; as in GitLab (outside ``rules``) it defaults to
  ``allow_failure: true``, which makes it optional; ``allow_failure: false`` makes it a
  blocking manual job that holds the later stages and leaves the pipeline ``manual``.
- YAML anchors, aliases and ``<<`` merge keys (PyYAML resolves them). Hidden jobs (``.name``)
  are templates and never run.

Ignored without error (a job runs as if they were absent): ``image``, ``services``, ``cache``,
``tags``, ``rules``, ``only``, ``except``, ``needs``, ``dependencies``, ``retry``,
``parallel``, ``coverage``, ``environment``, ``interruptible``, ``resource_group``,
``extends``, ``inherit``, ``include``, ``workflow``, ``artifacts:paths`` and every other
artifact, and any unknown key (so ``rules`` cannot turn a manual job's default to
``allow_failure: false`` here: say so explicitly). Jobs with ``when: delayed`` or ``never`` are
not created. Variables are not expanded inside other variables (the shell expands them in
scripts). A configuration GitLab would reject raises :class:`CiConfigError` with a message
in GitLab's words; the pipeline then fails with it in ``yaml_errors``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import yaml

CI_FILE = ".gitlab-ci.yml"
DEFAULT_STAGES = ("build", "test", "deploy")
WHEN_RUN = ("on_success", "on_failure", "always", "manual")
WHEN_NOT_CREATED = ("delayed", "never")
ARTIFACTS_WHEN = ("on_success", "on_failure", "always")
_RESERVED = frozenset(
    {
        "default",
        "include",
        "stages",
        "types",
        "variables",
        "workflow",
        "image",
        "services",
        "cache",
        "before_script",
        "after_script",
        "spec",
    }
)
_DURATION_PART = re.compile(
    r"(\d+(?:\.\d+)?)\s*(hours?|hrs?|h|minutes?|mins?|m|seconds?|secs?|s)?\b\s*", re.IGNORECASE
)
_UNIT_SECONDS = {"h": 3600, "m": 60, "s": 1}


class CiConfigError(ValueError):
    """The configuration is invalid; ``str(error)`` is GitLab's ``yaml_errors`` text."""


@dataclass(frozen=True)
class JobSpec:
    name: str
    stage: str
    stage_idx: int
    script: list[str]
    before_script: list[str] = field(default_factory=list)
    after_script: list[str] = field(default_factory=list)
    variables: dict[str, str] = field(default_factory=dict)
    junit: list[str] = field(default_factory=list)
    artifacts_when: str = "on_success"
    allow_failure: bool = False
    when: str = "on_success"
    timeout: float | None = None  # seconds; None means the simulator's default

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "stage": self.stage,
            "stage_idx": self.stage_idx,
            "script": self.script,
            "before_script": self.before_script,
            "after_script": self.after_script,
            "variables": self.variables,
            "junit": self.junit,
            "artifacts_when": self.artifacts_when,
            "allow_failure": self.allow_failure,
            "when": self.when,
            "timeout": self.timeout,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> JobSpec:
        return cls(**data)


@dataclass(frozen=True)
class CiConfig:
    stages: list[str]  # every declared stage, ``.pre`` first and ``.post`` last
    jobs: list[JobSpec]  # in stage order, then in file order

    @property
    def used_stages(self) -> list[str]:
        """The stages that have jobs, in order (what GitLab lists for a pipeline)."""
        present = {job.stage for job in self.jobs}
        return [stage for stage in self.stages if stage in present]


def parse_ci_config(text: str) -> CiConfig:
    """Parse and validate a ``.gitlab-ci.yml``; raises :class:`CiConfigError`."""
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise CiConfigError(_yaml_message(error)) from error
    if not isinstance(document, dict):
        raise CiConfigError("Invalid configuration format")
    stages = _stages(document)
    default = document.get("default") or {}
    if not isinstance(default, dict):
        raise CiConfigError("default config should be a hash")
    inherited = {
        key: _script(default[key] if key in default else document.get(key), key)
        for key in ("before_script", "after_script")
    }
    global_vars = _variables(document.get("variables"), "variables")
    jobs = []
    for name, body in document.items():
        if not isinstance(name, str) or name in _RESERVED or name.startswith("."):
            continue
        job = _job(name, body, stages, inherited, global_vars)
        if job is not None:
            jobs.append(job)
    if not jobs:
        raise CiConfigError("jobs config should contain at least one visible job")
    jobs.sort(key=lambda job: job.stage_idx)  # stable: file order within a stage
    return CiConfig(stages=stages, jobs=jobs)


def _yaml_message(error: yaml.YAMLError) -> str:
    mark = getattr(error, "problem_mark", None)
    problem = getattr(error, "problem", None) or str(error)
    where = f" at line {mark.line + 1} column {mark.column + 1}" if mark is not None else ""
    return f"({CI_FILE}): {problem}{where}"


def _stages(document: dict[str, Any]) -> list[str]:
    declared = document.get("stages", document.get("types", list(DEFAULT_STAGES)))
    if not isinstance(declared, list) or not all(isinstance(s, str) for s in declared):
        raise CiConfigError("stages config should be an array of strings")
    middle = [stage for stage in declared if stage not in (".pre", ".post")]
    return [".pre", *dict.fromkeys(middle), ".post"]


def _script(value: Any, where: str) -> list[str]:
    """A script: a string or nested lists of strings, flattened."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        lines: list[str] = []
        for item in value:
            if isinstance(item, (str, list)):
                lines.extend(_script(item, where))
            elif isinstance(item, (int, float)) and not isinstance(item, bool):
                lines.append(str(item))
            else:
                break
        else:
            return lines
    raise CiConfigError(
        f"{where} config should be a string or a nested array of strings up to 10 levels deep"
    )


def _variables(value: Any, where: str) -> dict[str, str]:
    if value is None:
        return {}
    message = f"{where} config should be a hash of key value pairs, value can be a hash"
    if not isinstance(value, dict):
        raise CiConfigError(message)
    result: dict[str, str] = {}
    for key, raw in value.items():
        if isinstance(raw, dict):
            raw = raw.get("value", "")
        if not isinstance(key, str) or isinstance(raw, (list, dict)):
            raise CiConfigError(message)
        result[key] = _scalar_text(raw)
    return result


def _scalar_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def parse_duration(text: Any) -> float:
    """Seconds in a GitLab duration (``90``, ``30s``, ``10m``, ``1h 30m``, ``2 minutes``)."""
    if isinstance(text, (int, float)) and not isinstance(text, bool) and text > 0:
        return float(text)
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"not a duration: {text!r}")
    total, position, source = 0.0, 0, text.strip()
    while position < len(source):
        match = _DURATION_PART.match(source, position)
        if match is None or match.end() == position:
            raise ValueError(f"not a duration: {text!r}")
        unit = (match.group(2) or "s").lower()
        total += float(match.group(1)) * _UNIT_SECONDS[unit[0]]
        position = match.end()
    if total <= 0:
        raise ValueError(f"not a duration: {text!r}")
    return total


def _job(
    name: str,
    body: Any,
    stages: list[str],
    inherited: dict[str, list[str]],
    global_vars: dict[str, str],
) -> JobSpec | None:
    where = f"jobs:{name}"
    if not isinstance(body, dict):
        raise CiConfigError(f"{where} config should be a hash")
    when = body.get("when", "on_success")
    if when in WHEN_NOT_CREATED:
        return None
    if when not in WHEN_RUN:
        raise CiConfigError(f"{where} when unknown value: {when}")
    if "script" not in body:
        raise CiConfigError(
            f"{where} config should implement the script:, run:, or trigger: keyword"
        )
    script = _script(body["script"], f"{where}:script")
    if not script:
        raise CiConfigError(f"{where}:script config can't be blank")
    stage = body.get("stage", "test")
    if not isinstance(stage, str) or stage not in stages:
        raise CiConfigError(
            f"{name} job: chosen stage {stage} does not exist; available stages are "
            + ", ".join(stages)
        )
    # GitLab: a manual job (outside rules) may fail, or never run, without failing anything.
    allow_failure = body.get("allow_failure", when == "manual")
    if isinstance(allow_failure, dict):
        allow_failure = True  # exit_codes are not modelled: any failure is allowed
    if not isinstance(allow_failure, bool):
        raise CiConfigError(f"{where} allow failure should be a hash or a boolean value")
    junit, artifacts_when = _artifacts(body.get("artifacts"), where)
    timeout = None
    if "timeout" in body:
        try:
            timeout = parse_duration(body["timeout"])
        except ValueError as error:
            raise CiConfigError(f"{where} timeout should be a duration") from error
    return JobSpec(
        name=name,
        stage=stage,
        stage_idx=stages.index(stage),
        script=script,
        before_script=_script(body["before_script"], f"{where}:before_script")
        if "before_script" in body
        else inherited["before_script"],
        after_script=_script(body["after_script"], f"{where}:after_script")
        if "after_script" in body
        else inherited["after_script"],
        variables={**global_vars, **_variables(body.get("variables"), f"{where}:variables")},
        junit=junit,
        artifacts_when=artifacts_when,
        allow_failure=allow_failure,
        when=when,
        timeout=timeout,
    )


def _artifacts(value: Any, where: str) -> tuple[list[str], str]:
    if value is None:
        return [], "on_success"
    if not isinstance(value, dict):
        raise CiConfigError(f"{where}:artifacts config should be a hash")
    when = value.get("when", "on_success")
    if when not in ARTIFACTS_WHEN:
        raise CiConfigError(f"{where}:artifacts when should be on_success, on_failure or always")
    reports = value.get("reports") or {}
    if not isinstance(reports, dict):
        raise CiConfigError(f"{where}:artifacts:reports config should be a hash")
    junit = reports.get("junit", [])
    if isinstance(junit, str):
        junit = [junit]
    if not isinstance(junit, list) or not all(isinstance(p, str) for p in junit):
        raise CiConfigError(
            f"{where}:artifacts:reports junit should be an array of strings or a string"
        )
    return junit, when
