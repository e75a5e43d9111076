"""The variables a job's scripts see: GitLab's basic predefined ``CI_*`` variables, then the
configuration's (global and job), then those given when the pipeline was created through
the API, each overriding the one before, as GitLab orders their precedence."""

from __future__ import annotations

import re
import sqlite3

from sim.core.base import Sim
from sim.merge_requests.records import mr_by_iid
from sim.pipelines.ci_config import JobSpec
from sim.pipelines.records import pipeline_variables
from sim.pipelines.views import job_url, pipeline_url, project_url

_SLUG_DROP = re.compile(r"[^a-z0-9]+")


def ref_slug(ref: str) -> str:
    """``CI_COMMIT_REF_SLUG``: lower-cased, anything but ``a-z0-9`` as ``-``, 63 at most."""
    return _SLUG_DROP.sub("-", ref.lower())[:63].strip("-")


async def job_variables(
    sim: Sim, project: sqlite3.Row, pipeline: sqlite3.Row, job: sqlite3.Row, spec: JobSpec
) -> dict[str, str]:
    ref, sha = str(pipeline["ref"]), str(pipeline["sha"])
    full_path = f"{project['namespace']}/{project['path']}"
    values = {
        "CI": "true",
        "GITLAB_CI": "true",
        "CI_SERVER": "yes",
        "CI_SERVER_URL": sim.base_url,
        "CI_API_V4_URL": f"{sim.base_url}/api/v4",
        "CI_PROJECT_ID": str(project["id"]),
        "CI_PROJECT_NAME": str(project["path"]),
        "CI_PROJECT_NAMESPACE": str(project["namespace"]),
        "CI_PROJECT_PATH": full_path,
        "CI_PROJECT_URL": project_url(sim, project),
        "CI_DEFAULT_BRANCH": str(project["default_branch"]),
        "CI_COMMIT_SHA": sha,
        "CI_COMMIT_SHORT_SHA": sha[:8],
        "CI_COMMIT_BEFORE_SHA": str(pipeline["before_sha"]),
        "CI_COMMIT_REF_NAME": ref,
        "CI_COMMIT_REF_SLUG": ref_slug(ref),
        "CI_PIPELINE_ID": str(pipeline["id"]),
        "CI_PIPELINE_IID": str(pipeline["iid"]),
        "CI_PIPELINE_SOURCE": str(pipeline["source"]),
        "CI_PIPELINE_URL": pipeline_url(sim, project, int(pipeline["id"])),
        "CI_JOB_ID": str(job["id"]),
        "CI_JOB_NAME": str(job["name"]),
        "CI_JOB_STAGE": str(job["stage"]),
        "CI_JOB_URL": job_url(sim, project, int(job["id"])),
    }
    mr_iid = pipeline["merge_request_iid"]
    mr = await mr_by_iid(sim, int(project["id"]), int(mr_iid)) if mr_iid is not None else None
    if mr is not None:
        values["CI_COMMIT_REF_NAME"] = str(mr["source_branch"])
        values["CI_COMMIT_REF_SLUG"] = ref_slug(str(mr["source_branch"]))
        values["CI_MERGE_REQUEST_IID"] = str(mr["iid"])
        values["CI_MERGE_REQUEST_SOURCE_BRANCH_NAME"] = str(mr["source_branch"])
        values["CI_MERGE_REQUEST_TARGET_BRANCH_NAME"] = str(mr["target_branch"])
        merged_result = pipeline["source_sha"] is not None
        values["CI_MERGE_REQUEST_EVENT_TYPE"] = "merged_result" if merged_result else "detached"
        if merged_result:
            values["CI_MERGE_REQUEST_SOURCE_BRANCH_SHA"] = str(pipeline["source_sha"])
    elif pipeline["tag"]:
        values["CI_COMMIT_TAG"] = ref
    else:
        values["CI_COMMIT_BRANCH"] = ref
    values.update(spec.variables)
    values.update(pipeline_variables(pipeline))
    return values
