"""The developer role's scheduling gates: dependencies and overlapping work.

Dependencies come from "Depends on #N" lines in the description, "is blocked by" issue
links (GitLab Premium) and the approved plan. Work starts only when every dependency is
done; a missing issue or a cycle stops it at blocked with the reason. A run also waits
while another running issue's owned paths overlap its own, so two agents never edit the
same files at once.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from forge.types import Issue
from roles.context import Services
from roles.engine.loop import GO, Admission, Verdict
from roles.pm.plan_notes import latest_plan, load_plan
from workflow import read_state

_DEPENDS_LINE = re.compile(r"^\s*depends\s+on\s*:?\s*(.+)$", re.I | re.M)
_REF = re.compile(r"(?<![\w/!])#(\d+)\b")
_WILDCARD = re.compile(r"[*?\[]")


def declared_dependencies(description: str) -> set[int]:
    """Issue iids named on "Depends on #3, #4" lines."""
    return {int(n) for line in _DEPENDS_LINE.findall(description) for n in _REF.findall(line)}


async def dependencies_of(services: Services, issue: Issue) -> set[int]:
    """From the description, the links and the plan; read again only once the issue changed
    (a waiting issue is checked on every engine pass)."""

    async def read() -> frozenset[int]:
        gateway = services.gateway
        found = declared_dependencies(issue.description)
        found |= set(await gateway.blocked_by(issue.project, issue.iid))
        # The notes as the admission reads them too: one read per issue change (0041).
        plan = latest_plan(list(await services.notes_of(issue)))
        if plan is not None:
            found |= set(plan[1].depends_on)
        found.discard(issue.iid)
        return frozenset(found)

    return set(await services.dependencies.get(issue, "", read))


def is_done(services: Services, issue: Issue) -> bool:
    state = read_state(services.workflow, issue.labels).state
    return issue.state == "closed" or (state is not None and state.name == "done")


async def dependency_admission(services: Services, issue: Issue) -> Admission:
    """GO when every dependency is done; WAIT naming the first unfinished; BLOCK on a
    missing issue or a cycle."""
    path: list[int] = [issue.iid]
    unfinished: list[str] = []
    seen: set[int] = set()

    async def visit(current: Issue) -> Admission | None:
        for iid in sorted(await dependencies_of(services, current)):
            if iid in path:
                cycle = " -> ".join(f"#{n}" for n in [*path[path.index(iid) :], iid])
                return Admission(Verdict.BLOCK, f"dependency cycle: {cycle}")
            if iid in seen:
                continue
            seen.add(iid)
            # From the pass's listing: a thousand issues waiting on one cost no call.
            dependency = await services.gateway.issues.lookup(issue.project, iid)
            if dependency is None:
                return Admission(
                    Verdict.BLOCK, f"#{current.iid} depends on #{iid}, which does not exist"
                )
            if is_done(services, dependency):
                continue
            unfinished.append(f"#{iid}")
            path.append(iid)
            verdict = await visit(dependency)
            path.pop()
            if verdict is not None:
                return verdict
        return None

    stop = await visit(issue)
    if stop is not None:
        return stop
    if unfinished:
        return Admission(Verdict.WAIT, f"waiting for {', '.join(unfinished)} to be done")
    return GO


def _literal_prefix(glob: str) -> str:
    match = _WILDCARD.search(glob)
    return glob if match is None else glob[: match.start()]


def globs_overlap(first: str, second: str) -> bool:
    """Could a file match both globs? Conservative: compares the literal prefixes."""
    a, b = _literal_prefix(first), _literal_prefix(second)
    if a == first and b == second:
        return a == b
    return a.startswith(b) or b.startswith(a)


def overlapping(mine: Iterable[str], theirs: Iterable[str]) -> list[str]:
    theirs = list(theirs)
    return sorted({glob for glob in mine if any(globs_overlap(glob, o) for o in theirs)})


async def overlap_admission(services: Services, issue: Issue, owned: list[str]) -> Admission:
    running = services.workflow.running_state("dev").label
    # The pass's listing, which this host's own claims update as they are made.
    listing = await services.gateway.issues.current(issue.project, max_age=5.0)
    for other in listing.at(running):
        if other.iid == issue.iid:
            continue
        plan = await load_plan(services.gateway, other.project, other.iid)
        if plan is None:
            continue
        shared = overlapping(owned, plan[1].owned_paths)
        if shared:
            return Admission(
                Verdict.WAIT, f"#{other.iid} is changing the same files ({', '.join(shared)})"
            )
    return GO
