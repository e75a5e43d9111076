"""A small valid plan, as the PM role writes one: for tests of what is done with a plan
(its binding to an approval, the plan gate), not of how it is made."""

from __future__ import annotations

from roles.pm.plan import Plan

PLAN = Plan(
    summary="Add a greeting.",
    steps=["write it"],
    acceptance=["python3 -m unittest"],
    owned_paths=["app/*.py"],
)
