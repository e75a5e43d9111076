"""crewline's DEMO agent: a deterministic program, not an AI.

It lets `crewline demo` (and the end-to-end tests) run the whole workflow offline. It
speaks the ``command`` adapter's contract: the prompt on stdin, the task kind in
``CREWLINE_TASK_KIND``, the session to resume in ``CREWLINE_SESSION_ID``, and a last
stdout line of JSON carrying the session id.

It does only what the goal spells out, in the goal's own text:

- ``Check: <command>`` lines become the plan's acceptance checks;
- ``Depends on #N`` lines become its dependencies;
- a fenced block opened with ```` ```demo-file PATH ```` holds the content of PATH; a block
  opened with ```` ```demo-file-first-attempt PATH ```` is what it writes on its first
  attempt instead (to show the validation loop converging on the second).

plan: prints a plan (JSON) built from the above. implement: writes the files (first-attempt
variants where given, unless the prompt carries feedback from a failed attempt). fix: writes
the final variants. review: finds nothing. It ends implement and fix with learnings.

diagnose: names the cause it recognises in the test's source (below). A flaky-test issue
the doctor handed on with the diagnosis "unseeded-randomness" (its title names the test) has
no file blocks: the plan owns the test's file and the change gives its random calls one
generator with a fixed seed, as the diagnosis's fix says.
"""

from __future__ import annotations

import json
import os
import re
import sys
import uuid
from pathlib import Path

from roles.prompts import FIRST_ATTEMPT

_FILE_BLOCK = re.compile(r"^```(demo-file(?:-first-attempt)?) (\S+)\n(.*?)^```$", re.M | re.S)
_CHECK = re.compile(r"^Check: (.+)$", re.M)
_DEPENDS = re.compile(r"^Depends on #(\d+)", re.M | re.I)
# The title sits fenced as untrusted data on its line (roles/untrusted.py).
_TITLE = re.compile(r"^## Issue #\d+: (?:<<<UNTRUSTED-\w+>>> )?(.+?)(?: <<<END-\w+>>>)?$", re.M)


def files_in(text: str) -> tuple[dict[str, str], dict[str, str]]:
    """(final contents, first-attempt contents) by path."""
    final: dict[str, str] = {}
    first: dict[str, str] = {}
    for kind, path, body in _FILE_BLOCK.findall(text):
        (first if kind.endswith("first-attempt") else final)[path] = body
    return final, first


def plan_for(prompt: str, workspace: Path | None = None) -> dict[str, object]:
    final, _ = files_in(prompt)
    title = _TITLE.search(prompt)
    checks = [command.strip() for command in _CHECK.findall(prompt)]
    seeded = flaky_test_file(prompt, workspace or Path.cwd()) if not final else None
    steps = [f"Write {path}" for path in final] or ["Nothing to change"]
    if seeded is not None:
        steps = [f"Give the random calls of {seeded} one generator with a fixed seed"]
    return {
        "summary": f"Implement '{title.group(1) if title else 'the goal'}' as the goal describes.",
        "steps": steps,
        "acceptance": checks or ["true"],
        "owned_paths": sorted(final) or [seeded or "README.md"],
        "depends_on": sorted({int(n) for n in _DEPENDS.findall(prompt)}),
        "risks": ["This is the demo agent: it writes exactly what the goal spells out."],
        "questions": [],
    }


def write_files(workspace: Path, contents: dict[str, str]) -> list[str]:
    for path, body in contents.items():
        target = workspace / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(body, encoding="utf-8")
    return sorted(contents)


LEARNINGS = [
    {"kind": "remember", "text": "demo/app runs its tests with python3 -m unittest discover."},
    {"kind": "decision", "text": "Wrote the files exactly as the goal specified them."},
]


# What the demo diagnostician recognises in the test's source: a call that makes a test's
# outcome depend on chance or on the clock, and the class it names.
_CAUSES = (
    (re.compile(r"\brandom\.(random|shuffle|choice|randint|sample)\("), "unseeded-randomness",
     "use a random.Random with a fixed seed in the test"),
    (re.compile(r"\b(datetime\.now|time\.time|date\.today)\("), "time-and-timezone",
     "inject a fixed clock into the code under test"),
)  # fmt: skip


def diagnosis_for(prompt: str) -> str:
    """The strict diagnosis a careful reader of the fenced source would give."""
    for pattern, cause, fix in _CAUSES:
        lines = [line.strip() for line in prompt.splitlines() if pattern.search(line)]
        if lines:
            evidence = "\n".join(f"- {line}" for line in lines[:3])
            return f"CLASS: {cause}\nCONFIDENCE: 0.9\nEVIDENCE:\n{evidence}\nFIX: {fix}"
    return "CLASS: unknown\nCONFIDENCE: 0.2\nEVIDENCE:\nFIX:"


_FLAKY_TITLE = re.compile(r"Flaky test ([\w.]+)")
_UNSEEDED = re.compile(r"\brandom\.(random|shuffle|choice|randint|sample)\(")
SEED = 1  # random.Random(1) draws the same inputs on every run


def flaky_test_file(prompt: str, workspace: Path) -> str | None:
    """The file of the flaky test the prompt's diagnosis blames on unseeded randomness."""
    named = _FLAKY_TITLE.search(prompt)
    if named is None or "unseeded-randomness" not in prompt:
        return None
    parts = named.group(1).split(".")[:-1]
    paths = ["/".join(parts[:n]) + ".py" for n in range(len(parts), 0, -1)]
    return next((path for path in paths if (workspace / path).is_file()), paths[0])


def seed_randomness(workspace: Path, path: str) -> bool:
    """Route the file's module-level random calls through one seeded generator."""
    target = workspace / path
    if not target.is_file():
        return False
    text = target.read_text(encoding="utf-8")
    seeded = _UNSEEDED.sub(lambda m: f"_RANDOM.{m.group(1)}(", text)
    if seeded == text:
        return False
    head, sep, rest = seeded.partition("\n\n\n")
    generator = f"_RANDOM = random.Random({SEED})  # seeded: every run draws the same inputs\n"
    target.write_text(f"{head}\n\n{generator}{sep[:-1]}{rest}", encoding="utf-8")
    return True


def main() -> int:
    kind = os.environ.get("CREWLINE_TASK_KIND", "")
    session_dir = Path(os.environ.get("CREWLINE_TRANSCRIPT_DIR", "."))
    session_id = os.environ.get("CREWLINE_SESSION_ID") or uuid.uuid4().hex[:12]
    session_file = session_dir / f"demo-session-{session_id}.txt"
    prompt = sys.stdin.read()
    # A resumed session remembers the first prompt, as a real agent's session would.
    if session_file.exists():
        prompt = session_file.read_text(encoding="utf-8") + "\n" + prompt
    else:
        session_file.write_text(prompt, encoding="utf-8")
    workspace = Path.cwd()
    if kind == "plan":
        print("```json\n" + json.dumps(plan_for(prompt, workspace), indent=2) + "\n```")
    elif kind == "review":
        print("The change does what the goal asks.")
        print('```crewline-review\n{"findings": []}\n```')
    elif kind in ("implement", "fix"):
        final, first = files_in(prompt)
        # Sent back with feedback (a failed pipeline, requested changes): do it right now.
        retry = kind == "fix" or FIRST_ATTEMPT not in prompt
        chosen = final if retry else {**final, **first}
        written = write_files(workspace, chosen)
        flaky_file = flaky_test_file(prompt, workspace) if not chosen else None
        if flaky_file is not None and seed_randomness(workspace, flaky_file):
            written = [flaky_file]
        variant = "" if retry or not first else "first-attempt "
        print(f"Wrote {variant}{', '.join(written) or 'nothing'}.")
        learnings = [*LEARNINGS]
        if kind == "fix":
            learnings.append(
                {"kind": "failure", "text": "The first attempt failed validation; fixed it."}
            )
        print("```crewline-learnings\n" + json.dumps(learnings) + "\n```")
    elif kind == "diagnose":
        print(diagnosis_for(prompt))
    else:
        print("```crewline-learnings\n" + json.dumps(LEARNINGS) + "\n```")
    print(json.dumps({"session_id": session_id}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
