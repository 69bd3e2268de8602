"""A finished run told as a pull request: its title (from the goal) and its body (from what the
store kept: the workstreams and how each landed, the review rounds and their verdicts, the
checks the merge gate ran, and what the run cost).

What models wrote (workstream names, reviewers' comments) goes into the body as inline code,
shown as written: GitHub reads no mention (`@someone`, who would be notified), no issue
reference and no closing keyword (`fixes #12`, which would close it at the merge) in code.
The goal is the user's own words and stays as they wrote it.

Pure: the run's rows and events in, Markdown out. Everything comes from the store, not from
the supervisor's summary, so a run that finished earlier (delivered later by `conductor resume
RUN --pr`) reads exactly as one delivered the moment it ended.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from conductor.costs import PLANNER, Spend, spend_of
from conductor.events import EventKind, MergeGateOutcome, ReviewDecided, parse_all
from conductor.events.kinds import MERGE_OUTCOMES
from conductor.models import Event, Run, Session, SessionKind

TITLE_LENGTH = 72  # what a pull request list shows of a title without cutting it
COMMENT_LENGTH = 160  # of a reviewer's comment, quoted in the body
LANDED = (EventKind.MERGE_MERGED, EventKind.MERGE_ALREADY_MERGED)


def title_of(goal: str) -> str:
    """The goal as a one-line title: its first line, spaces folded, cut at a word before
    `TITLE_LENGTH` (with an ellipsis) when longer. The body carries the goal whole."""
    lines = [" ".join(line.split()) for line in goal.splitlines()]
    first = next((line for line in lines if line), "") or "conductor run"
    if len(first) <= TITLE_LENGTH:
        return first
    cut = first[: TITLE_LENGTH - 1]
    at_word = cut.rsplit(" ", 1)[0] if " " in cut else cut
    if len(at_word) < TITLE_LENGTH // 2:  # one very long word: cut inside it
        at_word = cut
    return at_word.rstrip(" ,;:.-") + "…"


@dataclass
class Landing:
    """What the merge gate did with one workstream, from its outcome events."""

    tried: int = 0  # outcomes the gate gave (merged, conflict, check_failed, ...)
    landed: str = ""  # the commit that landed last
    commits: int = 0  # what its last landing delivered
    failed_checks: list[str] = field(default_factory=list)  # the check of each refusal
    conflicts: int = 0


def landings(events: Iterable[Event]) -> dict[str, Landing]:
    """Per session, what the merge gate did with its reviewed commits."""
    found: dict[str, Landing] = {}
    for parsed in parse_all(events):
        session = parsed.event.session
        payload = parsed.payload
        if parsed.kind not in MERGE_OUTCOMES or not session:
            continue
        if not isinstance(payload, MergeGateOutcome):
            continue
        landing = found.setdefault(session, Landing())
        landing.tried += 1
        if parsed.kind in LANDED:
            landing.landed = payload.commit
            landing.commits = payload.commits or landing.commits
        elif parsed.kind == EventKind.MERGE_CHECK_FAILED:
            landing.failed_checks.append(payload.check or "a check")
        elif parsed.kind == EventKind.MERGE_CONFLICT:
            landing.conflicts += 1
    return found


@dataclass(frozen=True)
class Verdict:
    """One decided review round: its verdict, who gave it, what they said."""

    approved: bool
    decider: str
    comment: str

    def __str__(self) -> str:
        """`approved by X`, or `rejected by X: comment` (folded to one line, cut)."""
        text = f"{'approved' if self.approved else 'rejected'} by {literal(self.decider)}"
        comment = " ".join(self.comment.split())
        if len(comment) > COMMENT_LENGTH:
            comment = comment[: COMMENT_LENGTH - 1].rstrip() + "…"
        return text + (f": {literal(comment)}" if comment else "")


def verdicts(events: Iterable[Event]) -> dict[str, list[Verdict]]:
    """Each author's decided review rounds, oldest first, from the verdicts' events (a
    review's row reads `superseded` once its author asks again, whatever its verdict was)."""
    found: dict[str, list[Verdict]] = {}
    for parsed in parse_all(events):
        decided = parsed.payload
        if isinstance(decided, ReviewDecided) and decided.requester:
            approved = parsed.kind == EventKind.REVIEW_APPROVED
            decider = parsed.event.session or "a person"
            found.setdefault(decided.requester, []).append(
                Verdict(approved, decider, decided.comment)
            )
    return found


@dataclass(frozen=True)
class RunRecord:
    """What the body is made of, as the store has it."""

    run: Run
    branch: str  # the integration branch (the pull request's head)
    head: str  # its tip
    sessions: Sequence[Session]
    events: Sequence[Event]


def body_of(record: RunRecord) -> str:
    """The pull request's body, Markdown."""
    run = record.run
    planned = _workstreams(run.spec)
    lands = landings(record.events)
    spent = spend_of(run.spec, record.sessions)
    decided = verdicts(record.events)
    parts = [
        _header(record, len(planned)),
        _workstreams_table(planned, lands, spent, decided),
        _reviews(planned, decided),
        _checks(run.spec, planned, lands),
        _cost(spent, record.sessions, planned),
        f"Opened by conductor. The whole run: `conductor report {run.id}`.",
    ]
    return "\n\n".join(p for p in parts if p) + "\n"


def _header(record: RunRecord, count: int) -> str:
    run = record.run
    goal = "\n".join(f"> {line}" if line.strip() else ">" for line in run.goal.splitlines())
    base = f"`{run.base_ref}`" if run.base_ref else "a detached HEAD"
    at = f" at `{run.base_commit[:12]}`" if run.base_commit else ""
    streams = "workstream" if count == 1 else "workstreams"
    return (
        f"{goal}\n\nconductor run `{run.id}` planned this into {count} {streams}, each"
        f" written by its own Claude Code session, reviewed, and merged through the merge"
        f" gate into `{record.branch}` (at `{record.head[:12]}`), which started from"
        f" {base}{at}."
    )


def _workstreams_table(
    planned: Sequence[tuple[str, str]],
    lands: Mapping[str, Landing],
    spent: Mapping[str, Spend],
    decided: Mapping[str, list[Verdict]],
) -> str:
    rows = [
        "## Workstreams",
        "",
        "| Workstream | Outcome | Commits | Review rounds | Merges tried | Turns | Cost |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for wid, name in planned:
        landing = lands.get(wid, Landing())
        outcome = f"merged `{landing.landed[:12]}`" if landing.landed else "merged"
        spend = spent.get(wid, Spend())
        rows.append(
            f"| {_cell(_named(wid, name))} | {outcome} | {landing.commits} |"
            f" {len(decided.get(wid, []))} | {landing.tried} | {spend.turns} |"
            f" ${spend.cost_usd:.4f} |"
        )
    return "\n".join(rows)


def _reviews(planned: Sequence[tuple[str, str]], decided: Mapping[str, list[Verdict]]) -> str:
    lines = ["## Reviews", ""]
    for wid, name in planned:
        rounds = decided.get(wid, [])
        if not rounds:
            lines.append(f"- {_named(wid, name)}: no review round recorded")
            continue
        said = [f"{n}. {verdict}" for n, verdict in enumerate(rounds, 1)]
        lines.append(f"- {_named(wid, name)}: " + "; ".join(said))
    return "\n".join(lines)


def _checks(
    spec: Mapping[str, Any] | None,
    planned: Sequence[tuple[str, str]],
    lands: Mapping[str, Landing],
) -> str:
    config = (spec or {}).get("config")
    listed = config.get("checks") if isinstance(config, Mapping) else None
    checks = [str(c) for c in listed] if isinstance(listed, list | tuple) else []
    lines = ["## Checks", ""]
    if checks:
        lines.append(
            "The merge gate ran these on each merged result before moving the branch; every"
            " workstream's landing passed them:"
        )
        lines += [f"- {literal(c)}" for c in checks]
    else:
        lines.append(
            "No checks were configured (`checks` in conductor.toml): the merge gate merged"
            " what review approved, refusing conflicts and paths another workstream owns."
        )
    names = dict(planned)
    refused = [
        f"{_named(w, names.get(w, ''))}: {literal(check)}"
        for w, landing in lands.items()
        for check in landing.failed_checks
    ]
    conflicts = sum(landing.conflicts for landing in lands.values())
    if refused:
        lines += ["", "Refused along the way by a failed check, then fixed: " + "; ".join(refused)]
    if conflicts:
        lines += ["", f"Merge conflicts sent back to their session to resolve: {conflicts}."]
    return "\n".join(lines)


def _cost(
    spent: Mapping[str, Spend], sessions: Sequence[Session], planned: Sequence[tuple[str, str]]
) -> str:
    kinds = {s.name: s.kind for s in sessions}
    workstreams = {wid for wid, _ in planned}
    roles = {"workstreams": Spend(), "reviewers": Spend(), "planner": Spend()}
    for name, spend in spent.items():
        if name == PLANNER:
            role = "planner"
        elif name in workstreams or kinds.get(name) is SessionKind.WORKER:
            role = "workstreams"
        else:
            role = "reviewers"
        roles[role] = roles[role] + spend
    total = sum(spent.values(), Spend())
    each = ", ".join(
        f"{role} ${spend.cost_usd:.4f}" for role, spend in roles.items() if spend.cost_usd
    )
    return (
        f"## Cost\n\n${total.cost_usd:.4f} in total over {total.turns} turns"
        + (f" ({each})" if each else "")
        + "."
    )


def _workstreams(spec: Mapping[str, Any] | None) -> list[tuple[str, str]]:
    """The plan's workstreams as (id, name), in its order."""
    plan = (spec or {}).get("plan")
    listed = plan.get("workstreams") if isinstance(plan, Mapping) else None
    if not isinstance(listed, list):
        return []
    return [
        (str(w["id"]), str(w.get("name") or ""))
        for w in listed
        if isinstance(w, Mapping) and w.get("id")
    ]


def _named(wid: str, name: str) -> str:
    """A workstream as `A (core)`, in inline code (the plan's words are a model's)."""
    return literal(f"{wid} ({name})" if name and name != wid else wid)


def _cell(text: str) -> str:
    """Text safe in a Markdown table's cell: one line, no column break."""
    return " ".join(text.split()).replace("|", "\\|")


def literal(text: str) -> str:
    """`text` on one line as inline code, whatever it holds: fenced by one more backtick than
    its longest run of them (CommonMark), with a space inside when it has any."""
    text = " ".join(text.split())
    if not text:
        return ""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if longest else ""
    return f"{fence}{pad}{text}{pad}{fence}"
