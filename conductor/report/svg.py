"""The timeline as an inline SVG picture: a lane per session, its phases as bars, messages as
arrows between lanes, marks where the merge gate or a reviewer decided, a time axis on top.

Elements carry stable names a browser test (and a stylesheet) finds them by: `svg#timeline`,
`g.lane[data-session=NAME]`, `rect.phase.working|waiting|review|merge`, `g.message`,
`.mark.merged|rejected|check-failed|conflict|refused|died`, each with a `<title>` tooltip
saying what it is. No namespace URL, no external reference of any kind: the page's own
stylesheet colours it. Every text is escaped (`format.attr`), in elements and attributes.
"""

from __future__ import annotations

from collections.abc import Sequence

from conductor.report.format import attr, clock, duration, elapsed
from conductor.report.timeline import Arrow, Mark, Phase, RunMoment, Timeline

WIDTH = 1000.0  # the picture's own units; the page scales it to its width
LABEL = 130.0  # the lane names' column
RIGHT = 20.0
AXIS = 30.0  # the time axis, above the lanes
LANE = 30.0
BAR = 16.0
BOTTOM = 10.0
MARK = 6.0  # a mark's half size
# Tick steps in seconds: the first giving at most a tick per TICK_SPACING pixels wins.
STEPS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200)
TICK_SPACING = 90
# The picture is at least as wide as the page, and wider (scrolled sideways) for a run whose
# busiest lane has many phases, so each stays wide enough to see and point at.
MIN_WIDTH, PER_PHASE, MAX_WIDTH = 720, 8, 16000


class Scale:
    """Where a moment and a lane are drawn."""

    def __init__(self, timeline: Timeline, lanes: Sequence[str]) -> None:
        self.start = timeline.start
        self.span = max(timeline.end - timeline.start, 1e-6)
        self.rows = {name: i for i, name in enumerate(lanes)}

    def x(self, at: float) -> float:
        return LABEL + (at - self.start) / self.span * (WIDTH - LABEL - RIGHT)

    def y(self, lane: str) -> float:
        """The middle of a lane."""
        return AXIS + self.rows[lane] * LANE + LANE / 2


def timeline_svg(timeline: Timeline, lanes: Sequence[str]) -> str:
    """The picture of `timeline`, its lanes in the order of `lanes` (those with a lane)."""
    shown = [name for name in lanes if name in timeline.lanes]
    scale = Scale(timeline, shown)
    height = AXIS + LANE * max(len(shown), 1) + BOTTOM
    busiest = max((len(timeline.lanes[name].phases) for name in shown), default=0)
    least = min(max(MIN_WIDTH, busiest * PER_PHASE), MAX_WIDTH)  # a long run scrolls sideways
    parts = [
        f'<svg id="timeline" viewBox="0 0 {WIDTH:.0f} {height:.0f}" width="100%"'
        f' style="min-width: {least}px"'
        f' role="img" aria-label="timeline of the run, a lane per session">',
        "<defs>"
        '<marker id="arrowhead" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7"'
        ' markerHeight="7" orient="auto-start-reverse">'
        '<path d="M0,0 L10,5 L0,10 z" class="arrowhead"/></marker></defs>',
        _axis(timeline, scale, height, most=max(least // TICK_SPACING, 2)),
    ]
    marks: dict[str, list[Mark]] = {}
    for mark in timeline.marks:
        marks.setdefault(mark.session, []).append(mark)
    for name in shown:
        parts.append(_lane(name, timeline.lanes[name].phases, marks.get(name, []), scale))
    parts += [_moment(m, scale, height) for m in timeline.moments]
    parts.append('<g class="messages">')
    parts += [_arrow(a, scale) for a in timeline.arrows if a.sender in scale.rows]
    parts.append("</g></svg>")
    return "\n".join(p for p in parts if p)


def _axis(timeline: Timeline, scale: Scale, height: float, *, most: int) -> str:
    """Ticks at a round step (at most `most` of them), labelled with the time since the start."""
    span = timeline.end - timeline.start
    step = next((s for s in STEPS if span / s <= most), STEPS[-1])
    ticks = ['<g class="axis">']
    ticks.append(
        f'<line class="axis-line" x1="{LABEL:.1f}" y1="{AXIS - 6:.1f}"'
        f' x2="{WIDTH - RIGHT:.1f}" y2="{AXIS - 6:.1f}"/>'
    )
    at = 0.0
    while at <= span + 1e-9:
        x = scale.x(timeline.start + at)
        ticks.append(
            f'<line class="tick" x1="{x:.1f}" y1="{AXIS - 10:.1f}" x2="{x:.1f}"'
            f' y2="{height - BOTTOM:.1f}"/>'
            f'<text class="tick-label" x="{x:.1f}" y="{AXIS - 14:.1f}" text-anchor="middle">'
            f"{attr(elapsed(at))}</text>"
        )
        at += step
    ticks.append(
        f'<text class="axis-name" x="{LABEL - 20:.1f}" y="{AXIS - 14:.1f}" text-anchor="end">'
        f"from {attr(clock(timeline.start))}</text></g>"
    )
    return "".join(ticks)


def _lane(name: str, phases: list[Phase], marks: list[Mark], scale: Scale) -> str:
    y = scale.y(name)
    parts = [
        f'<g class="lane" data-session="{attr(name)}">',
        f'<text class="lane-name" x="{LABEL - 8:.1f}" y="{y + 4:.1f}" text-anchor="end">'
        f"{attr(name)}</text>",
        f'<line class="lane-line" x1="{LABEL:.1f}" y1="{y:.1f}" x2="{WIDTH - RIGHT:.1f}"'
        f' y2="{y:.1f}"/>',
    ]
    for phase in phases:
        x0, x1 = scale.x(phase.start), scale.x(phase.end)
        width = max(x1 - x0, 0.0 if phase.kind == "waiting" else 1.0)
        took = duration(phase.end - phase.start)
        when = f"{clock(phase.start)} to {clock(phase.end)}"
        title = f"{name} {phase.kind} {when} ({took}): {phase.what}"
        parts.append(
            f'<rect class="phase {phase.kind}" x="{x0:.2f}" y="{y - BAR / 2:.1f}"'
            f' width="{width:.2f}" height="{BAR:.1f}"><title>{attr(title)}</title></rect>'
        )
    for mark in marks:
        parts.append(_mark(mark, scale.x(mark.at), y - BAR / 2))
    parts.append("</g>")
    return "".join(parts)


def _mark(mark: Mark, x: float, y: float) -> str:
    """A shape per kind: a dot landed, a cross refused, a triangle a red check, a diamond a
    conflict; at the top edge of the lane's bar."""
    m = MARK
    shapes = {
        "merged": f"M{x - m:.1f},{y:.1f} a{m:.1f},{m:.1f} 0 1,0 {2 * m:.1f},0"
        f" a{m:.1f},{m:.1f} 0 1,0 {-2 * m:.1f},0 z",
        "check-failed": f"M{x:.1f},{y + m:.1f} L{x - m:.1f},{y - m:.1f} L{x + m:.1f},{y - m:.1f} z",
        "conflict": f"M{x:.1f},{y - m:.1f} L{x + m:.1f},{y:.1f} L{x:.1f},{y + m:.1f}"
        f" L{x - m:.1f},{y:.1f} z",
    }
    cross = (
        f"M{x - m:.1f},{y - m:.1f} L{x + m:.1f},{y + m:.1f}"
        f" M{x + m:.1f},{y - m:.1f} L{x - m:.1f},{y + m:.1f}"
    )
    d = shapes.get(mark.kind, cross)
    title = f"{mark.session} {mark.kind} at {clock(mark.at)}: {mark.what}"
    return f'<path class="mark {attr(mark.kind)}" d="{d}"><title>{attr(title)}</title></path>'


def _moment(moment: RunMoment, scale: Scale, height: float) -> str:
    """The run's state changed (interrupted, resumed, finished): a line across the lanes."""
    x = scale.x(moment.at)
    title = f"{clock(moment.at)}: {moment.what}"
    return (
        f'<g class="run-state {attr(moment.state)}"><title>{attr(title)}</title>'
        f'<line x1="{x:.2f}" y1="{AXIS - 10:.1f}" x2="{x:.2f}" y2="{height - BOTTOM:.1f}"/></g>'
    )


def _arrow(arrow: Arrow, scale: Scale) -> str:
    if arrow.recipient not in scale.rows:
        return ""
    x1, y1 = scale.x(arrow.sent_at), scale.y(arrow.sender)
    read = arrow.read_at
    x2, y2 = scale.x(read if read is not None else arrow.sent_at), scale.y(arrow.recipient)
    y2 += -BAR / 2 if y2 > y1 else BAR / 2  # to the edge of the recipient's bar
    kinds = "message" + (" review" if arrow.review else "") + (" unread" if read is None else "")
    when = f"sent {clock(arrow.sent_at)}, " + (
        f"read {clock(read)}" if read is not None else "never read"
    )
    title = f"message #{arrow.message_id} {arrow.sender} → {arrow.recipient} ({when}): {arrow.text}"
    return (
        f'<g class="{kinds}" data-from="{attr(arrow.sender)}" data-to="{attr(arrow.recipient)}">'
        f"<title>{attr(title)}</title>"
        f'<line x1="{x1:.2f}" y1="{y1:.1f}" x2="{x2:.2f}" y2="{y2:.1f}"'
        ' marker-end="url(#arrowhead)"/></g>'
    )
