"""``PUT /projects/:id`` for a project's merge settings. The core serves the rest of the
project; this route accepts only the settings merge requests depend on (and
``merge_pipelines_enabled``, which the pipelines module keeps) and refuses any other field,
so a caller never believes something changed that did not."""

from __future__ import annotations

from dataclasses import replace

from aiohttp import web

from sim.core.base import (
    MAINTAINER,
    SIM_KEY,
    access_level,
    current_user,
    load_project,
    project_json,
)
from sim.core.http import Params, fail, invalid
from sim.merge_requests.records import SETTING_NAMES, merge_settings, save_merge_settings
from sim.merge_requests.status import MERGE_METHODS
from sim.pipelines.records import merge_pipelines_enabled, save_merge_pipelines_enabled

CI_SETTING = "merge_pipelines_enabled"


async def update_project_settings(request: web.Request) -> web.Response:
    sim = request.app[SIM_KEY]
    project = await load_project(request, MAINTAINER)
    params = await Params.of(request)
    unsupported = sorted(set(params.json()) - set(SETTING_NAMES) - {"id", CI_SETTING})
    if unsupported:
        fail(
            400,
            f"the simulator cannot change {', '.join(unsupported)}: PUT /projects/:id accepts"
            f" only {', '.join((*SETTING_NAMES, CI_SETTING))}",
            key="error",
        )
    settings = await merge_settings(sim, int(project["id"]))
    method = params.get_str("merge_method", settings.merge_method) or settings.merge_method
    if method not in MERGE_METHODS:
        fail(400, "merge_method does not have a valid value", key="error")
    approvals = params.get_int("approvals_before_merge", settings.approvals_before_merge)
    if approvals is None or approvals < 0:
        invalid("approvals_before_merge")
    settings = replace(
        settings,
        merge_method=method,
        approvals_before_merge=approvals,
        **{
            name: params.get_bool(name, getattr(settings, name))
            for name in (
                "only_allow_merge_if_pipeline_succeeds",
                "only_allow_merge_if_all_discussions_are_resolved",
                "remove_source_branch_after_merge",
            )
        },
    )
    await save_merge_settings(sim, int(project["id"]), settings)
    merged_results = await merge_pipelines_enabled(sim, int(project["id"]))
    if params.has(CI_SETTING):
        merged_results = bool(params.get_bool(CI_SETTING))
        await save_merge_pipelines_enabled(sim, int(project["id"]), merged_results)
    level = await access_level(sim, current_user(request), int(project["id"]))
    return web.json_response(
        {**project_json(sim, project, level), **settings.as_json(), CI_SETTING: merged_results}
    )
