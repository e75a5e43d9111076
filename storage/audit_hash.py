"""How an audit row is hashed: the one definition that Python (``crewline audit verify``) and
SQL (the append statement, as ``crewline_audit_hash``) both use, so they cannot drift apart.

``hash = sha256(prev_hash + canonical JSON of {id, at, who, what, target, payload_digest,
verdict})``, plus ``count`` in that JSON when the row stands for more than one call.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

GENESIS_HASH = "0" * 64
SQL_NAME = "crewline_audit_hash"


def canonical_json(value: Any) -> bytes:
    # default=str: a digest must never block an audited write because of an odd payload type.
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
    ).encode("utf-8")


def payload_digest(payload: Any) -> str:
    """sha256 of the payload: raw bytes as they are, anything else as canonical JSON."""
    data = bytes(payload) if isinstance(payload, bytes | bytearray) else canonical_json(payload)
    return hashlib.sha256(data).hexdigest()


def row_hash(
    prev_hash: str,
    entry_id: int,
    at: str,
    who: str,
    what: str,
    target: str,
    payload_digest: str,
    verdict: str,
    count: int = 1,
) -> str:
    fields: dict[str, Any] = {
        "id": entry_id,
        "at": at,
        "who": who,
        "what": what,
        "target": target,
        "payload_digest": payload_digest,
        "verdict": verdict,
    }
    if count != 1:  # rows from before counts existed keep their hashes
        fields["count"] = count
    return hashlib.sha256(prev_hash.encode("ascii") + canonical_json(fields)).hexdigest()
