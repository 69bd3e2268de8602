"""A `RunReport` as one self-contained HTML page (the template in `template.py`), rendered by
Jinja2 with autoescape on: whatever a session, a goal or a file name holds is shown as text,
never read as markup. Control characters are written out (`\\x1b`) as the terminal views do."""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import cache
from typing import Any

import jinja2
from markupsafe import Markup

import conductor
from conductor.costs import PLANNER
from conductor.models import Review, SessionKind
from conductor.report.format import clock, duration, moment, money
from conductor.report.read import RunReport
from conductor.report.svg import timeline_svg
from conductor.report.template import PAGE, STYLE
from conductor.text import escape_controls

# A long run's lists, shown to their last this many (a line says how many more there are).
ROUNDS_LISTED = 100  # review rounds per workstream
GATE_LISTED = 200  # merge attempts
CHECKS_LISTED = 20  # failed checks with their output


@dataclass(frozen=True)
class SessionRow:
    name: str
    role: str
    status: str
    turns: int
    cost_usd: float
    note: str


def _shown(value: Any) -> Any:
    """Every value a template prints, its control characters written out (markup the page
    made itself, the SVG, is left as it is: it escaped its own text)."""
    if isinstance(value, str) and not isinstance(value, Markup):
        return escape_controls(value)
    return value


@cache
def _template() -> jinja2.Template:
    env = jinja2.Environment(
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        finalize=_shown,
        keep_trailing_newline=True,
    )
    env.filters.update(moment=moment, clock=clock, duration=duration, money=money)
    return env.from_string(PAGE)


def render_page(report: RunReport, *, written: float | None = None) -> str:
    """The report as an HTML document."""
    lanes = report.timeline.lanes
    svg = timeline_svg(report.timeline, report.lanes)
    end = report.ended_at or report.timeline.end
    merged = sum(1 for w in report.workstreams if w.merged)
    failed = sum(1 for w in report.workstreams if w.failed)
    reviews = [review for rounds in report.reviews.values() for review in rounds]
    failed_checks = [o for o in report.gate if o.check_failed]
    return _template().render(
        r=report,
        style=Markup(STYLE),
        svg=Markup(svg),
        length=duration(end - report.started_at),
        merged=merged,
        failed=failed,
        others=len(report.workstreams) - merged - failed,
        reviews=len(reviews),
        rejected=sum(1 for review in reviews if _verdict(report, review) == "rejected"),
        failed_checks=failed_checks[-CHECKS_LISTED:],
        checks_failed=len(failed_checks),
        gate=report.gate[-GATE_LISTED:],
        gate_not_shown=max(len(report.gate) - GATE_LISTED, 0),
        listed_rounds={a: rounds[-ROUNDS_LISTED:] for a, rounds in report.reviews.items()},
        rounds_not_shown={a: len(rounds) - ROUNDS_LISTED for a, rounds in report.reviews.items()},
        messages=[a for a in report.timeline.arrows if not a.review and a.sender in lanes],
        sessions=session_rows(report),
        titles={w.name: w.title for w in report.workstreams},
        version=conductor.__version__,
        written=written if written is not None else time.time(),
    )


def session_rows(report: RunReport) -> list[SessionRow]:
    """The planner (when it ran), then the sessions in the timeline's order, each with what
    it spent."""
    spent = {c.name: c for c in report.costs}
    rows = []
    if PLANNER in spent:
        rows.append(
            SessionRow(
                PLANNER, "planner", "done", spent[PLANNER].turns, spent[PLANNER].cost_usd, ""
            )
        )
    order = {name: i for i, name in enumerate(report.lanes)}
    for s in sorted(report.sessions, key=lambda s: order.get(s.name, len(order))):
        cost = spent.get(s.name)
        role = cost.role if cost else ("reviewers" if s.kind is SessionKind.REVIEWER else "workers")
        rows.append(SessionRow(s.name, role, s.status.value, s.turns, s.cost_usd, s.note))
    return rows


def _verdict(report: RunReport, review: Review) -> str:
    """A review's verdict, as its events said it (a later request makes its row say only
    `superseded`), else its row's status (pending, or superseded undecided)."""
    return report.timeline.verdicts.get(review.id, review.status.value)
