"""A run's page as data: the read model (`conductor.readmodel`) turned into the plain values
the page shows, the same for the first render and for every server-sent update, so what the
browser draws live is what a reload would draw.

Values are text, never markup: the templates escape them and the page's script sets them as
text (`textContent`), so what a session wrote reaches the screen as characters only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from conductor.models import Review, RunState, SessionStatus
from conductor.readmodel import RunView, SessionView, cost_text
from conductor.text import clock

STOPPABLE = RunState.ACTIVE.value  # seen so only while its supervisor is alive


def session_row(run: RunView, view: SessionView) -> dict[str, Any]:
    review = run.human_review(view)
    return {
        "name": view.name,
        "kind": view.kind.value,
        "status": view.status.value,
        "doing": run.doing(view),
        "host": view.host,
        "turns": view.turns_so_far,
        "cost": cost_text(view.cost_so_far, view.estimating) if view.cost_so_far else "",
        # A clock time, not an age: the data changes only when the run does.
        "last": clock(view.last_event_at) if view.last_event_at else "",
        "waiting": run.waits_on_person(view),
        "human_review": review.id if review is not None else None,
        "blocked": view.status is SessionStatus.BLOCKED,
    }


def review_row(review: Review) -> dict[str, Any]:
    return {
        "id": review.id,
        "requester": review.requester,
        "reviewer": review.reviewer or "",
        "status": review.status.value,
        "decided_by": review.decided_by or "",
        "comment": review.comment,
    }


def run_state(run: RunView, seen: str, reviews: Sequence[Review] = ()) -> dict[str, Any]:
    """Everything the run page shows but its lines. `seen`: the run's state as a person
    should read it (`Bus.seen_state`: interrupted when its supervisor is gone)."""
    workstreams, merged = run.workstreams()
    shown = run.shown()
    rows = [session_row(run, v) for v in shown]
    return {
        "run": run.run_id,
        "goal": run.goal,
        "state": seen,
        "started": clock(run.started_at) if run.started_at else "",
        "workstreams": workstreams,
        "merged": merged,
        "turns": run.turns,
        "cost": run.spent,
        "sessions": rows,
        "hosts": any(v.host for v in shown),
        "merge_queue": list(run.merge_queue),
        "reviews": [review_row(r) for r in reviews],
        "waiting": [
            {"name": row["name"], "review": row["human_review"], "doing": row["doing"]}
            for row in rows
            if row["waiting"]
        ],
        "can_stop": seen == STOPPABLE,
        # Nobody drives it and something is left: what `conductor resume` takes (a run
        # made by hand has no plan, and a finished one nothing to do).
        "can_resume": bool(run.depends) and seen not in (STOPPABLE, RunState.FINISHED.value),
    }
