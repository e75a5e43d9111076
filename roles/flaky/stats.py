"""The doctor's arithmetic (pure): a failure rate with its confidence interval, how many
runs prove a fix, and the validator's verdict.

The reproducer runs the suspect job k times and reports p = failures / k with a Wilson score
interval, which stays inside [0, 1] and is honest for small k and for 0 or k failures, where
the textbook normal interval collapses to a point. A fix that changed nothing still fails with
probability p per run, so it passes N runs in a row with probability (1 - p)^N; choosing
N = ceil(ln 0.05 / ln(1 - p)) makes that at most 5%. The floor keeps a high p from proving a
fix in one or two runs, the ceiling bounds the CI spent on a rare flake.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

Z95 = 1.959963984540054  # two-sided 95%
MISS = 0.05  # the chance a fix that did nothing passes validation


@dataclass(frozen=True)
class Rate:
    failures: int
    runs: int
    low: float
    high: float

    @property
    def p(self) -> float:
        return self.failures / self.runs if self.runs else 0.0

    def text(self) -> str:
        return (
            f"p = {self.p:.2f} ({self.failures}/{self.runs} runs failed; "
            f"95% interval {self.low:.2f}..{self.high:.2f})"
        )


def wilson(failures: int, runs: int, z: float = Z95) -> Rate:
    if runs < 0 or not 0 <= failures <= runs:
        raise ValueError(f"{failures} failures in {runs} runs: need 0 <= failures <= runs")
    if runs == 0:
        return Rate(0, 0, 0.0, 1.0)
    p = failures / runs
    denominator = 1 + z * z / runs
    centre = (p + z * z / (2 * runs)) / denominator
    half = z * math.sqrt(p * (1 - p) / runs + z * z / (4 * runs * runs)) / denominator
    # At 0 or ``runs`` failures one end is exactly 0 or 1; say so rather than 1e-17 off it.
    low = 0.0 if failures == 0 else max(0.0, centre - half)
    high = 1.0 if failures == runs else min(1.0, centre + half)
    return Rate(failures, runs, low, high)


def runs_to_validate(p: float, *, floor: int = 4, ceiling: int = 60) -> int:
    """N such that a fix that did nothing (still failing with probability ``p``) passes all
    N runs with probability at most 5%, within [floor, ceiling]."""
    if floor > ceiling:
        raise ValueError(f"validate_floor {floor} is above validate_ceiling {ceiling}")
    if p <= 0.0:
        return ceiling  # nothing measured: spend the most we allow
    if p >= 1.0:
        return floor
    needed = math.ceil(math.log(MISS) / math.log(1.0 - p))
    return max(floor, min(ceiling, needed))


def validated(outcomes: list[bool], needed: int) -> bool:
    """Only N out of N green: every one of ``needed`` runs passed."""
    return len(outcomes) >= needed and all(outcomes[:needed])
