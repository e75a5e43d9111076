"""Goals for the chaos harness: independent files, so any number of them can merge in any
order, written for the built-in demo agent (``demo-file`` blocks and ``Check:`` lines).

Every third goal fails validation once (its first attempt returns the wrong value) and
converges on the second, so the convergence loop is killed in too.
"""

from __future__ import annotations

from dataclasses import dataclass

FENCE = "```"


@dataclass(frozen=True)
class ChaosGoal:
    title: str
    description: str
    expect_state: str = "done"


def _block(kind: str, path: str, body: str) -> str:
    return f"{FENCE}{kind} {path}\n{body}{FENCE}"


def _module(n: int, value: int) -> str:
    return f'"""Chaos goal {n}."""\n\n\ndef value_{n}() -> int:\n    return {value}\n'


def _test(n: int) -> str:
    return (
        "import unittest\n\n"
        f"from app.chaos_{n} import value_{n}\n\n\n"
        f"class Value{n}Test(unittest.TestCase):\n"
        f"    def test_value(self) -> None:\n"
        f"        self.assertEqual(value_{n}(), {n * 7})\n"
    )


def chaos_goal(n: int) -> ChaosGoal:
    blocks = []
    if n % 3 == 0:
        blocks.append(_block("demo-file-first-attempt", f"app/chaos_{n}.py", _module(n, -n)))
    blocks.append(_block("demo-file", f"app/chaos_{n}.py", _module(n, n * 7)))
    blocks.append(_block("demo-file", f"tests/test_chaos_{n}.py", _test(n)))
    check = (
        f'Check: python3 -c "from app.chaos_{n} import value_{n}; assert value_{n}() == {n * 7}"'
    )
    description = "\n\n".join(
        [f"Add value_{n}(), which answers {n * 7}, with a unit test.", check, *blocks]
    )
    return ChaosGoal(title=f"Chaos goal {n}: value_{n}", description=description)


def chaos_goals(count: int) -> list[ChaosGoal]:
    return [chaos_goal(n) for n in range(1, count + 1)]
