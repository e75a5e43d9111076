"""The ports: every interface the roles and the engine use, in one place (SPEC §12).

A role sees GitLab through :class:`IssueTracker` (issues, labels, notes) and
:class:`MergeRequests` (branches, merge requests, discussions, pipelines, jobs), and reads a
project's CI history through :class:`CiReads`: each answers with the typed values of
``forge.types``, ``forge.mr_types`` and ``forge.ci_types``, never GitLab's raw JSON. They are
defined in ``forge/ports.py`` (forge's own helpers are typed against them too) and
implemented by ``forge.gateway.Gateway``, ``forge.merge_gateway.MergeGateway`` and
``forge.ci_history.CiHistory``, which only the composition root in ``bot/`` builds: no
module under ``roles/`` names a concrete gateway (``tests/test_layering.py``).

The other ports: :class:`Agent` (a coding agent CLI), :class:`Sandbox` (where commands run),
:class:`Notifier` and :class:`Desk` (the humans' surfaces), :class:`AuditSink` (the audit
trail), :class:`LocalLeases` (this host's leases), :class:`IssueClaims` (the claim protocol
over GitLab and those leases), :class:`GitLabCalls` (an identity's audited calls) and
:class:`Role` (what the engine runs for one stage). This module holds no behaviour.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from forge.calls import AuditSink as AuditSink
from forge.claim_types import LocalLeases as LocalLeases
from forge.ports import AccessLookup as AccessLookup
from forge.ports import CiReads as CiReads
from forge.ports import GitLabCalls as GitLabCalls
from forge.ports import IssueClaims as IssueClaims
from forge.ports import IssueListings as IssueListings
from forge.ports import IssueSnapshot as IssueSnapshot
from forge.ports import IssueTracker as IssueTracker
from forge.ports import MergeRequests as MergeRequests
from forge.ports import OwnUserNames as OwnUserNames
from forge.ports import OwnUsers as OwnUsers
from forge.ports import OwnWriteEcho as OwnWriteEcho
from forge.types import Issue
from roles.agents.base import Agent as Agent
from roles.notify import Desk as Desk
from roles.notify import Notifier as Notifier
from roles.sandbox.base import Sandbox as Sandbox

if TYPE_CHECKING:  # the role port speaks of the engine's own types
    from roles.context import RunContext, Services
    from roles.engine.admission import Admission, RoleResult


class Role(Protocol):
    """What the engine runs for one stage: whether an issue may start now, and the run."""

    name: str

    async def admit(self, services: Services, issue: Issue) -> Admission: ...

    async def run(self, ctx: RunContext) -> RoleResult: ...


__all__ = [
    "AccessLookup",
    "Agent",
    "AuditSink",
    "CiReads",
    "Desk",
    "GitLabCalls",
    "IssueClaims",
    "IssueListings",
    "IssueSnapshot",
    "IssueTracker",
    "LocalLeases",
    "MergeRequests",
    "Notifier",
    "OwnUserNames",
    "OwnUsers",
    "OwnWriteEcho",
    "Role",
    "Sandbox",
]
