"""Phases too short to see, drawn as one: a lane of a long run (thousands of turns, each a
working and a waiting phase) keeps about `PHASES_SHOWN` bars, each at least a
`PHASES_SHOWN`th of the run long, instead of one per phase. A merged bar is coloured by the
kind it spent the most time in, and its tooltip says how many phases it stands for and the
time in each kind. Runs with fewer phases than that are drawn as they are.

The fold merges as it goes (`bound`), so a lane never holds more than a few times
`PHASES_SHOWN` phases however long the run; its end merges once more at the run's length.
"""

from __future__ import annotations

from conductor.report.format import duration
from conductor.report.parts import Phase

PHASES_SHOWN = 1000  # a lane's bars, about: each at least this fraction of the run's length
SLACK = 4  # the fold merges a lane's phases when it holds this many times PHASES_SHOWN


def bound(phases: list[Phase]) -> list[Phase]:
    """`phases` as the fold keeps them: as they are while there are few, else merged at the
    grain of the time they cover so far (it only grows, so the final grain is never finer).
    What comes out is at most about three times PHASES_SHOWN, whatever the clock said: the
    next merge is a thousand phases away, and the fold stays linear."""
    if len(phases) <= SLACK * PHASES_SHOWN:
        return phases
    return merge_short(phases, _extent(phases) / PHASES_SHOWN)


def final(phases: list[Phase], start: float, end: float) -> list[Phase]:
    """A lane's phases as drawn: merged at the run's grain when there are too many."""
    if len(phases) <= PHASES_SHOWN:
        return phases
    return merge_short(phases, max(end - start, _extent(phases)) / PHASES_SHOWN)


def _extent(phases: list[Phase]) -> float:
    return max(phase.end for phase in phases) - min(phase.start for phase in phases)


def merge_short(phases: list[Phase], grain: float) -> list[Phase]:
    """Each stretch of neighbouring phases shorter than `grain` (with gaps shorter than it
    between them) as one phase, until the stretch is `grain` long; a phase `grain` long or
    more stays as it is. At most about twice (length / grain) phases come out."""
    if grain <= 0:
        return phases
    out: list[Phase] = []
    group: list[Phase] = []
    for phase in phases:
        short = phase.end - phase.start < grain
        if group and (
            not short
            or group[-1].end - group[0].start >= grain
            or phase.start - group[-1].end >= grain
        ):
            out.append(merged(group))
            group = []
        if short:
            group.append(phase)
        else:
            out.append(phase)
    if group:
        out.append(merged(group))
    return out


def merged(group: list[Phase]) -> Phase:
    """The phases of `group` (in order) as one."""
    if len(group) == 1:
        return group[0]
    times: dict[str, float] = {}
    for phase in group:
        for kind, spent in phase.kind_times().items():
            times[kind] = times.get(kind, 0.0) + spent
    most = max(times, key=lambda kind: times[kind])
    count = sum(phase.merged for phase in group)
    each = ", ".join(
        f"{kind} {duration(t)}" for kind, t in sorted(times.items(), key=lambda kt: -kt[1])
    )
    what = f"{count} phases, each too short to draw apart: {each}"
    start, end = group[0].start, max(phase.end for phase in group)
    return Phase(most, start, end, what, count, tuple(times.items()))
