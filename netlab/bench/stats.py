"""Statistics of repeated measurements: min/median/max, spread, ratios, drift (pure, no kernel).

A single iperf3 figure on a shared 2-core machine says little: another process can halve it. So
every figure the bench prints is a :class:`Summary` over N repeats, and every comparison is a
:class:`Ratio` of medians that also carries the worst and best case (min/max over min/max), so a
reader can see at once whether two labs differ by more than the noise.
"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass
from typing import Sequence


@dataclass(frozen=True)
class Summary:
    """min/median/max of N samples; ``spread`` = (max - min) / median, the noise in one number."""

    n: int
    min: float
    median: float
    max: float

    @property
    def spread(self) -> float:
        return (self.max - self.min) / self.median if self.median else 0.0

    def as_dict(self) -> dict:
        return {**asdict(self), "spread": self.spread}


def summarize(values: Sequence[float | None]) -> Summary | None:
    """Summary of the successful samples (``None`` marks a failed run); None if there are none."""
    ok = [float(v) for v in values if v is not None]
    if not ok:
        return None
    return Summary(len(ok), min(ok), statistics.median(ok), max(ok))


@dataclass(frozen=True)
class Ratio:
    """``value`` = lab median / baseline median; ``low``/``high`` bound it by the spreads of both
    (lab min / baseline max, lab max / baseline min), so two ratios whose ranges overlap are not
    distinguishable on this run."""

    value: float
    low: float
    high: float

    def overlaps(self, lo: float, hi: float) -> bool:
        return self.low <= hi and self.high >= lo

    def as_dict(self) -> dict:
        return asdict(self)


def ratio(lab: Summary | None, base: Summary | None) -> Ratio | None:
    if lab is None or base is None or base.median <= 0 or base.min <= 0:
        return None
    return Ratio(lab.median / base.median, lab.min / base.max, lab.max / base.min)


def drift(values_in_order: Sequence[float | None]) -> float | None:
    """Relative change from the first to the last successful sample of a target measured once per
    round. The rounds are interleaved across targets, so a machine that got slower (or faster)
    during the run shows up here instead of silently favouring whichever lab ran first."""
    ok = [v for v in values_in_order if v is not None]
    if len(ok) < 2 or ok[0] == 0:
        return None
    return (ok[-1] - ok[0]) / ok[0]


def human_rate(value: float, unit: str) -> str:
    """``12.3G`` for bit/s, ``410k`` for pkt/s: short enough for a table cell."""
    for factor, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= factor:
            return f"{value / factor:.3g}{suffix}"
    return f"{value:.3g}"
