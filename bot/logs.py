"""Log output: the human text format, or JSON for log stacks (Loki, Elasticsearch, Cloud
Logging): one object per line with time, level, logger and message, and the issue, role, run
and worker a line is about. Those come from the record's ``extra`` when a caller passed
them, else from the ``issue=… role=… run=…`` context crewline's messages already carry.
Every message is scrubbed by the guard's secret rules (crewline's own tokens and the known
token shapes) before it is written."""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, Literal

from forge.guard import Guard

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
CONTEXT_FIELDS = ("issue", "role", "run", "worker")
# `issue=demo/app#3`, `run=pm-1:` ...: the value ends at a space, comma or closing bracket.
_CONTEXT = re.compile(r"\b(issue|role|run|worker)=([^\s,;)\]]+?)(?=[\s,;)\]]|:?$|:\s)")

LogFormat = Literal["text", "json"]


class Scrubber:
    """Replaces secrets the guard recognises with their redacted form (a prefix and a length)."""

    def __init__(self, own_secrets: Iterable[str] = ()) -> None:
        self._guard = Guard(own_secrets)

    def __call__(self, text: str) -> str:
        findings = [f for f in self._guard.scan(text) if f.rule.startswith("secret.")]
        for finding in sorted(findings, key=lambda f: f.start, reverse=True):
            text = f"{text[: finding.start]}[redacted {finding.redacted}]{text[finding.end :]}"
        return text


class TextFormatter(logging.Formatter):
    def __init__(self, scrub: Scrubber) -> None:
        super().__init__(TEXT_FORMAT)
        self.scrub = scrub

    def format(self, record: logging.LogRecord) -> str:
        return self.scrub(super().format(record))


class JsonFormatter(logging.Formatter):
    def __init__(self, scrub: Scrubber, worker: str | None = None) -> None:
        super().__init__()
        self.scrub = scrub
        self.worker = worker

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": message,
        }
        found = dict(_CONTEXT.findall(message))
        for name in CONTEXT_FIELDS:
            given = getattr(record, name, None)
            if given is None:
                given = found.get(name)
            if given is None and name == "worker":
                given = self.worker
            if given is not None:
                entry[name] = str(given)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        return self.scrub(json.dumps(entry, ensure_ascii=False, default=str))


def configure_logging(
    level: int,
    log_format: LogFormat,
    *,
    secrets: Iterable[str] = (),
    worker: str | None = None,
) -> None:
    """(Re)configure the root logger on standard error; called again once the configuration
    and secrets are known, so JSON lines carry the worker and scrub the configured tokens."""
    handler = logging.StreamHandler(sys.stderr)
    scrub = Scrubber(secrets)
    if log_format == "json":
        handler.setFormatter(JsonFormatter(scrub, worker))
    else:
        handler.setFormatter(TextFormatter(scrub))
    logging.basicConfig(level=level, handlers=[handler], force=True)
