"""Rich renderables for sessions, claims, reviews, the lock and events.

User text goes into `Text` objects and every console is made with `markup=False` and
`emoji=False`, so `[/tmp]` or `:bomb:` in a note prints exactly as written; its control
characters are written out (`escape_controls`), so an ANSI escape in a note is shown as
`\\x1b[31m`, never sent to the terminal to act on.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from rich import box
from rich.cells import cell_len, set_cell_size
from rich.console import Console, Group, RenderableType
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from conductor.models import (
    Claim,
    ContextEntry,
    Event,
    Lease,
    Message,
    Review,
    Run,
    Session,
    SessionStatus,
)
from conductor.readmodel import RunView, SessionView, cost_text, does_work
from conductor.readmodel.transcript import transcript_lines as transcript_lines  # (plain lines)
from conductor.text import SESSION_COLUMNS, ago, escape_controls, one_line, session_rows
from conductor.text import clock as clock  # where the commands have always found it

if TYPE_CHECKING:
    from conductor.plan import Plan
    from conductor.supervisor import RunSummary

WAITING_STYLE = "bold reverse yellow"  # a row or line that waits on a person
STATUS_STYLE = {
    SessionStatus.PENDING: "dim",
    SessionStatus.WORKING: "green",
    SessionStatus.IDLE: "cyan",
    SessionStatus.BLOCKED: "bold yellow",
    SessionStatus.REVIEW: "magenta",
    SessionStatus.DONE: "bold green",
    SessionStatus.FAILED: "bold red",
    SessionStatus.STOPPED: "red",
}


def console(stderr: bool = False) -> Console:
    return Console(markup=False, emoji=False, highlight=False, stderr=stderr)


def _t(value: object, style: str = "") -> Text:
    """A cell: what anyone wrote, with its control characters escaped."""
    return Text("" if value is None else escape_controls(str(value)), style=style)


def sessions_table(sessions: Sequence[Session], unread: dict[str, int] | None = None) -> Table:
    table = Table(title="Sessions", title_justify="left")
    for col in SESSION_COLUMNS:
        table.add_column(col)
    for s, row in zip(sessions, session_rows(sessions, unread), strict=True):
        styles = ("bold", "", STATUS_STYLE[s.status], "", "", "", "")
        table.add_row(*(_t(cell, style) for cell, style in zip(row, styles, strict=True)))
    return table


def claims_table(claims: Sequence[Claim]) -> Table:
    table = Table(title="Claims", title_justify="left")
    for col in ("Path", "Session", "Since"):
        table.add_column(col)
    for c in claims:
        table.add_row(_t(c.path), _t(c.session, "bold"), _t(ago(c.created_at)))
    return table


def reviews_table(reviews: Sequence[Review]) -> Table:
    table = Table(title="Reviews", title_justify="left")
    for col in ("#", "From", "To", "Status", "Commit", "Diff", "Comment"):
        table.add_column(col)
    for r in reviews:
        table.add_row(
            _t(r.id),
            _t(r.requester, "bold"),
            _t(r.reviewer or "anyone"),
            _t(r.status.value),
            _t(r.commit[:12]),
            _t(f"{r.diff_size} B"),
            _t(r.comment),
        )
    return table


def context_table(entries: Sequence[ContextEntry]) -> Table:
    table = Table(title="Shared context", title_justify="left")
    for col in ("#", "Category", "By", "Entry"):
        table.add_column(col)
    for e in entries:
        table.add_row(_t(e.id), _t(e.category.value), _t(e.author or "conductor"), _t(e.body))
    return table


def messages_table(messages: Sequence[Message], title: str = "Inbox") -> Table:
    table = Table(title=title, title_justify="left")
    for col in ("#", "From", "To", "Re", "At", "Message"):
        table.add_column(col)
    for m in messages:
        to = "all" if m.broadcast else ", ".join(m.recipients)
        table.add_row(
            _t(m.id),
            _t(m.sender or "conductor", "bold"),
            _t(to),
            _t(f"#{m.reply_to}" if m.reply_to else ""),
            _t(clock(m.created_at)),
            _t(m.body, "" if m.read_at is None else "dim"),
        )
    return table


def events_table(events: Sequence[Event], title: str = "Recent events") -> Table:
    table = Table(title=title, title_justify="left")
    for col in ("#", "At", "Session", "Event", "Summary"):
        table.add_column(col)
    for e in events:
        table.add_row(
            _t(e.id), _t(clock(e.created_at)), _t(e.session or ""), _t(e.kind), _t(e.summary)
        )
    return table


def lock_text(lease: Lease | None, now: float | None = None) -> Text:
    if lease is None:
        return Text("git lock: free")
    left = lease.expires_at - (now or time.time())
    state = f"lease ends in {left:.0f}s" if left > 0 else "lease expired"
    holder = escape_controls(f"{lease.holder} (pid {lease.pid} on {lease.host})")
    return Text(f"git lock: held by {holder}, {state}")


def dashboard(
    run: Run,
    sessions: Sequence[Session],
    unread: dict[str, int],
    claims: Sequence[Claim],
    reviews: Sequence[Review],
    lease: Lease | None,
    events: Sequence[Event],
    state: str | None = None,
) -> RenderableType:
    """`state`: the run's state as a person should read it (bus.seen_state), if not stored.
    `human` and `auto` get no row (they never run) unless someone wrote to them."""
    sessions = [s for s in sessions if does_work(s) or unread.get(s.name)]
    shown = state or run.state.value
    header = Text(f"run {run.id} · {shown} · started {ago(run.created_at)}", "bold")
    if run.goal:
        header.append(f"\ngoal: {escape_controls(run.goal)}", style="")
    waiting = [s.name for s in sessions if s.status is SessionStatus.BLOCKED]
    parts: list[RenderableType] = [header, sessions_table(sessions, unread)]
    if waiting:
        parts.append(Text(escape_controls(f"blocked: {', '.join(waiting)}"), "bold yellow"))
    parts.append(claims_table(claims) if claims else Text("no claims", "dim"))
    parts.append(reviews_table(reviews) if reviews else Text("no pending reviews", "dim"))
    parts += [lock_text(lease), events_table(events)]
    return Group(*parts)


def plan_table(plan: Plan) -> Table:
    """The plan's workstreams; a Model column when one names its own model."""
    table = Table(title="Plan", title_justify="left")
    models = any(w.model for w in plan.workstreams)
    for col in ("ID", "Name", *(["Model"] if models else []), "Owns", "After", "Task"):
        table.add_column(col)
    for w in plan.workstreams:
        table.add_row(
            _t(w.id, "bold"),
            _t(w.name),
            *([_t(w.model or "(the run's)")] if models else []),
            _t("\n".join(w.owns)),
            _t(", ".join(w.depends_on)),
            _t(w.task + (f"\npromises: {w.interface}" if w.interface else "")),
        )
    return table


def summary_table(summary: RunSummary) -> Table:
    table = Table(title=f"Run {summary.run_id}", title_justify="left")
    for col in ("Session", "State", "Turns", "Cost", "Commits", "Reviews", "Merge", "Detail"):
        table.add_column(col)
    for o in summary.outcomes:
        style = "bold green" if o.state == "merged" else "bold red"
        table.add_row(
            _t(o.id, "bold"),
            _t(o.state, style),
            _t(o.turns),
            _t(f"${o.cost_usd:.4f}"),
            _t(o.commits),
            _t(o.review_rounds),
            _t(o.merge),
            _t(o.detail),
        )
    for name, spend in summary.others.items():  # the planner, agent reviewers
        table.add_row(
            _t(name, "bold"), _t(""), _t(spend.turns), _t(f"${spend.cost_usd:.4f}"), *[_t("")] * 4
        )
    return table


def live_view(
    snapshot: RunView, now: float | None = None, width: int | None = None
) -> RenderableType:
    """The dashboard `conductor run` keeps redrawing: the run and its totals, what waits on
    you, a row per session saying what it is doing, the merge queue and the latest notable
    events. `width`: the terminal's; every line but a waiting one fits it."""
    now = time.time() if now is None else now
    limit = width or 200
    started = ago(snapshot.started_at, now)
    header = Text(f"run {snapshot.run_id} · {snapshot.state or '?'} · started {started}", "bold")
    if snapshot.goal:
        header.append("\n" + _cut(f"goal: {escape_controls(snapshot.goal)}", limit), style="")
    header.append("\n" + _cut(totals_line(snapshot), limit), style="")
    parts: list[RenderableType] = [header]
    parts += [waiting_text(snapshot, v) for v in snapshot.waiting()]
    parts.append(live_sessions_table(snapshot, now, width))
    queue = ", ".join(snapshot.merge_queue)
    parts.append(
        Text(_cut(f"merge queue: {escape_controls(queue)}", limit))
        if queue
        else Text("merge queue: empty", "dim")
    )
    if snapshot.tail:
        parts.append(Text("\n".join(_cut(line, limit) for line in snapshot.tail)))
    else:
        parts.append(Text("no notable events yet", "dim"))
    return Group(*parts)


def totals_line(snapshot: RunView) -> str:
    """`3 workstreams, 1 merged · 7 sessions · 51 turns · $0.2250 of $5.00`: sessions are
    those that run (`human` and `auto` do not); a `~` cost counts turns going on at list
    price; `of $5.00`: the run's hard cost ceiling (max_cost), when it has one."""
    workstreams, merged = snapshot.workstreams()
    sessions = len(snapshot.shown())
    parts = [
        f"{_count(workstreams, 'workstream')}, {merged} merged" if workstreams else "",
        _count(sessions, "session"),
        _count(snapshot.turns, "turn"),
        snapshot.spent,
    ]
    return " · ".join(p for p in parts if p)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _cut(line: str, width: int) -> str:
    """One line, cut with an ellipsis to `width` columns (the live view never wraps one)."""
    return line if cell_len(line) <= width else set_cell_size(line, width - 1) + "…"


def waiting_text(snapshot: RunView, view: SessionView) -> Text:
    """The line that says what a person can do about a session waiting on them."""
    review = snapshot.human_review(view)
    name = escape_controls(view.name)
    if review is not None:
        return Text(
            f"waiting on you: conductor review approve {review.id} --from human"
            f"  (review #{review.id} of {name}; or: reject {review.id} --from human -m WHY)",
            WAITING_STYLE,
        )
    return Text(
        f"blocked: {name}"
        + (f": {one_line(escape_controls(view.note), 100)}" if view.note else ""),
        WAITING_STYLE,
    )


LIVE_COLUMNS = ("ID", "Status", "Turns", "Cost", "Age", "Doing")


def live_sessions_table(
    snapshot: RunView, now: float | None = None, width: int | None = None
) -> Table:
    """A row per session that runs. What it is doing goes last and gets the width the other
    columns leave, cut short rather than wrapped, so each session stays one line even at 80
    columns (left to itself, rich would squeeze every column to fit a long path)."""
    rows: list[tuple[list[Text], str, bool]] = []
    shown = snapshot.shown()
    hosts = any(v.host for v in shown)  # a run whose sessions run on workers: where each is
    columns = [*LIVE_COLUMNS[:1], *(["Host"] if hosts else []), *LIVE_COLUMNS[1:]]
    for v in shown:
        age = ago(v.last_event_at, now).removesuffix(" ago") if v.last_event_at else ""
        cells = [
            _t(v.name, "bold"),
            *([_t(v.host)] if hosts else []),
            _t(v.status.value, STATUS_STYLE[v.status]),
            _t(v.turns_so_far or ""),
            _t(cost_text(v.cost_so_far, v.estimating) if v.cost_so_far else ""),
            _t(age),
        ]
        rows.append((cells, snapshot.doing(v), snapshot.waits_on_person(v)))

    def table_of(doing_width: int, fill: bool = False) -> Table:
        table = Table(
            title="Sessions",
            title_justify="left",
            box=box.SIMPLE_HEAD,
            show_edge=False,
            padding=(0, 1, 0, 0),
        )
        for col in columns[:-1]:
            right = col in ("Turns", "Cost", "Age")
            table.add_column(col, no_wrap=True, justify="right" if right else "left")
        table.add_column(
            columns[-1],
            no_wrap=True,
            overflow="ellipsis",
            min_width=doing_width if fill else None,  # the same width frame after frame
        )
        for cells, doing, waiting in rows:
            table.add_row(
                *cells,
                _t(one_line(doing, doing_width)) if doing_width else _t(""),
                style=WAITING_STYLE if waiting else None,
            )
        return table

    if width is None:
        return table_of(200)
    others = Measurement.get(Console(width=10_000), Console().options, table_of(0)).maximum
    # The empty table's Doing column is as wide as its header: that much is in `others`.
    return table_of(max(len("Doing"), width - others + len("Doing")), fill=True)
