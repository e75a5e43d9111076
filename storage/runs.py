"""Runs, their step checkpoints, and agent spend.

A run is one (project, iid, stage, attempt). Its steps are named; a finished step's result is
checkpointed so that a restarted worker skips it. Checkpoints are write-once: a second write of
the same step keeps the *first* result and returns it, so a step replayed after a crash between
"do" and "record" converges on one answer. Usage is kept as a ledger (for spend over any window)
and as per-run totals, both written in the same transaction.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from storage.checks import require_int, require_number, require_text
from storage.clock import Clock, iso_of, iso_utc, parse_iso
from storage.db import Database, Transaction
from storage.errors import RunFinishedError, RunNotFoundError


class RunStatus(StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    BLOCKED = "blocked"
    ABANDONED = "abandoned"


FINAL_STATUSES = frozenset(RunStatus) - {RunStatus.RUNNING}


@dataclass(frozen=True)
class Run:
    id: int
    project: str
    iid: int
    stage: str
    attempt: int
    worker: str
    status: RunStatus
    started_at: datetime
    updated_at: datetime
    finished_at: datetime | None
    detail: str | None
    tokens_in: int
    tokens_out: int
    cost_usd: float
    session_id: str | None

    @property
    def finished(self) -> bool:
        return self.status is not RunStatus.RUNNING


@dataclass(frozen=True)
class Spend:
    tokens: int
    cost_usd: float


class RunStore:
    def __init__(self, db: Database, clock: Clock = time.time) -> None:
        self._db = db
        self._clock = clock

    async def start(self, project: str, iid: int, stage: str, attempt: int, worker: str) -> Run:
        """Create the run, or return the unfinished one for resumption (now owned by ``worker``).

        Raises :class:`RunFinishedError` when that attempt already finished: start the next one.
        """
        require_text("project", project)
        require_text("stage", stage)
        require_text("worker", worker)
        require_int("iid", iid, minimum=1)
        require_int("attempt", attempt, minimum=1)
        now = iso_utc(self._clock())
        rows = await self._db.returning(
            """
            INSERT INTO runs (project, iid, stage, attempt, worker, status, started_at, updated_at)
            VALUES (?, ?, ?, ?, ?, 'running', ?, ?)
            ON CONFLICT (project, iid, stage, attempt) DO UPDATE
                SET worker = excluded.worker, updated_at = excluded.updated_at
                WHERE runs.status = 'running'
            RETURNING *
            """,
            (project, iid, stage, attempt, worker, now, now),
        )
        if rows:
            return _run(rows[0])
        # The conflict that skipped the update is a finished run, and finished is final.
        finished = await self.find(project, iid, stage, attempt)
        assert finished is not None
        raise RunFinishedError(
            f"run {finished.id} ({project}#{iid} {stage} attempt {attempt}) already "
            f"finished as {finished.status}; start attempt {attempt + 1} to try again"
        )

    async def checkpoint(self, run_id: int, step: str, result: Any) -> Any:
        """Record a finished step's result; return the recorded result (the first one written)."""
        require_text("step", step)
        try:
            encoded = json.dumps(result, allow_nan=False, ensure_ascii=False)
        except (TypeError, ValueError) as exc:
            raise ValueError(
                f"checkpoint {step!r} of run {run_id}: result is not JSON-serialisable ({exc}); "
                "store plain dicts, lists, strings, numbers, booleans or None"
            ) from exc
        # One statement: it records the step only while the run is unfinished, keeps the
        # first result of a step recorded twice (the no-op update returns it), and touches
        # the run (trigger checkpoints_touch_run).
        rows = await self._db.returning(
            """
            INSERT INTO checkpoints (run_id, step, result_json, recorded_at)
            SELECT id, ?, ?, ? FROM runs WHERE id = ? AND status = 'running'
            ON CONFLICT (run_id, step) DO UPDATE SET step = step
            RETURNING result_json
            """,
            (step, encoded, iso_utc(self._clock()), run_id),
        )
        if not rows:
            run = await self.get(run_id)  # raises when there is no such run
            raise RunFinishedError(
                f"run {run_id} finished as {run.status}; its steps can no longer change"
            )
        return json.loads(rows[0]["result_json"])

    async def steps(self, run_id: int) -> dict[str, Any]:
        """The run's finished steps and their results, in the order they were recorded."""
        await self.get(run_id)
        rows = await self._db.fetchall(
            "SELECT step, result_json FROM checkpoints WHERE run_id = ? ORDER BY id", (run_id,)
        )
        return {row["step"]: json.loads(row["result_json"]) for row in rows}

    async def finish(self, run_id: int, status: RunStatus | str, detail: str | None = None) -> Run:
        """End the run. Finishing again with the same status is a no-op; another status raises."""
        final = _final_status(status)
        now = iso_utc(self._clock())
        rows = await self._db.returning(
            """
            UPDATE runs SET status = ?, detail = ?, finished_at = ?, updated_at = ?
            WHERE id = ? AND status = 'running' RETURNING *
            """,
            (final.value, detail, now, now, run_id),
        )
        if rows:
            return _run(rows[0])
        run = await self.get(run_id)  # raises when there is no such run
        if run.status is final:
            return run
        raise RunFinishedError(
            f"run {run_id} already finished as {run.status}; it cannot become {final}"
        )

    async def get(self, run_id: int) -> Run:
        """The run with this id; :class:`RunNotFoundError` if there is none."""
        row = await self._db.fetchone("SELECT * FROM runs WHERE id = ?", (run_id,))
        if row is None:
            raise _not_found(run_id)
        return _run(row)

    async def latest(self, project: str, iid: int, stage: str | None = None) -> Run | None:
        """The most recently started run of the issue (of that stage, if given)."""
        sql = "SELECT * FROM runs WHERE project = ? AND iid = ?"
        params: list[Any] = [project, iid]
        if stage is not None:
            sql += " AND stage = ?"
            params.append(stage)
        row = await self._db.fetchone(sql + " ORDER BY id DESC LIMIT 1", params)
        return _run(row) if row is not None else None

    async def find(self, project: str, iid: int, stage: str, attempt: int) -> Run | None:
        """The run of that attempt, if this host has one."""
        row = await self._db.fetchone(
            "SELECT * FROM runs WHERE project = ? AND iid = ? AND stage = ? AND attempt = ?",
            (project, iid, stage, attempt),
        )
        return _run(row) if row is not None else None

    async def active(self) -> list[Run]:
        """Every unfinished run, oldest first."""
        rows = await self._db.fetchall("SELECT * FROM runs WHERE status = 'running' ORDER BY id")
        return [_run(row) for row in rows]

    async def add_usage(self, run_id: int, tokens_in: int, tokens_out: int, cost_usd: float) -> Run:
        """Add agent usage to the run (allowed after it finished: agents report late)."""
        require_int("tokens_in", tokens_in, minimum=0)
        require_int("tokens_out", tokens_out, minimum=0)
        require_number("cost_usd", cost_usd)
        async with self._db.transaction() as tx:
            await _get_in(tx, run_id)
            now = iso_utc(self._clock())
            await tx.execute(
                """
                INSERT INTO usage (run_id, recorded_at, tokens_in, tokens_out, cost_usd)
                VALUES (?, ?, ?, ?, ?)
                """,
                (run_id, now, tokens_in, tokens_out, float(cost_usd)),
            )
            row = await tx.fetchone(
                """
                UPDATE runs SET tokens_in = tokens_in + ?, tokens_out = tokens_out + ?,
                    cost_usd = cost_usd + ?, updated_at = ?
                WHERE id = ? RETURNING *
                """,
                (tokens_in, tokens_out, float(cost_usd), now, run_id),
            )
        assert row is not None
        return _run(row)

    async def set_session(self, run_id: int, session_id: str) -> Run:
        """Remember the agent session to resume (e.g. after needs-input or a crash)."""
        require_text("session_id", session_id)
        rows = await self._db.returning(
            "UPDATE runs SET session_id = ?, updated_at = ? WHERE id = ? RETURNING *",
            (session_id, iso_utc(self._clock()), run_id),
        )
        if not rows:
            raise _not_found(run_id)
        return _run(rows[0])

    async def spend(
        self,
        project: str | None = None,
        iid: int | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> Spend:
        """Usage recorded in ``[since, until)`` (aware datetimes; either end may be open), for a
        project / issue / everything."""
        start = iso_of(since) if since is not None else None
        end = iso_of(until) if until is not None else None
        if start is not None and end is not None and end < start:
            raise ValueError(
                f"spend window ends at {end}, before it starts at {start}; pass since <= until"
            )
        sql = """
            SELECT COALESCE(SUM(u.tokens_in + u.tokens_out), 0) AS tokens,
                   COALESCE(SUM(u.cost_usd), 0.0) AS cost
            FROM usage AS u JOIN runs AS r ON r.id = u.run_id WHERE 1 = 1
        """
        params: list[Any] = []
        if project is not None:
            sql += " AND r.project = ?"
            params.append(project)
        if iid is not None:
            sql += " AND r.iid = ?"
            params.append(iid)
        if start is not None:
            sql += " AND u.recorded_at >= ?"
            params.append(start)
        if end is not None:
            sql += " AND u.recorded_at < ?"
            params.append(end)
        row = await self._db.fetchone(sql, params)
        assert row is not None
        return Spend(tokens=int(row["tokens"]), cost_usd=float(row["cost"]))


async def _get_in(tx: Transaction, run_id: int) -> Run:
    row = await tx.fetchone("SELECT * FROM runs WHERE id = ?", (run_id,))
    if row is None:
        raise _not_found(run_id)
    return _run(row)


def _not_found(run_id: int) -> RunNotFoundError:
    return RunNotFoundError(f"no run with id {run_id}; start one with RunStore.start()")


def _final_status(status: RunStatus | str) -> RunStatus:
    try:
        final = RunStatus(status)
    except ValueError:
        final = None
    if final is None or final not in FINAL_STATUSES:
        allowed = ", ".join(sorted(FINAL_STATUSES))
        raise ValueError(f"a run finishes as one of {allowed}; got {status!r}")
    return final


def _run(row: Any) -> Run:
    finished_at = row["finished_at"]
    return Run(
        id=int(row["id"]),
        project=row["project"],
        iid=int(row["iid"]),
        stage=row["stage"],
        attempt=int(row["attempt"]),
        worker=row["worker"],
        status=RunStatus(row["status"]),
        started_at=parse_iso(row["started_at"]),
        updated_at=parse_iso(row["updated_at"]),
        finished_at=parse_iso(finished_at) if finished_at is not None else None,
        detail=row["detail"],
        tokens_in=int(row["tokens_in"]),
        tokens_out=int(row["tokens_out"]),
        cost_usd=float(row["cost_usd"]),
        session_id=row["session_id"],
    )
