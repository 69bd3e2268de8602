"""`--pr` of `conductor run` and `conductor resume`: a run that merged everything delivered as a
pull request (conductor.run.delivery does it), and what is said of it.

Delivery never changes a run's exit status: a merged run whose pull request could not be
opened still exits 0, with one line saying why and what to paste instead.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from conductor.cli.common import err, print_json, run_async, say

if TYPE_CHECKING:
    from conductor.run.delivery import Delivery as Delivery
    from conductor.run.summary import RunSummary

PrOpt = Annotated[
    bool | None,
    typer.Option(
        "--pr/--no-pr",
        help="Once everything merged, push the integration branch and open a pull request"
        " with gh (default: conductor.toml's pr).",
    ),
]


def deliver(
    summary: RunSummary | None, pr: bool | None, db: str | None, run: str | None = None
) -> Delivery | None:
    """The run (`summary`: the one that just ended; else `run`, one that ended before)
    delivered when --pr or its `pr` setting asks; None: not asked."""
    from conductor.run.delivery import deliver_run

    run_id = summary.run_id if summary is not None else run
    return run_async(lambda: deliver_run(run_id, cwd=Path.cwd(), db=db, pr=pr, ended=summary))


def as_json(delivered: Delivery | None) -> dict[str, Any]:
    """The `pull_request` key of `--json` (null: not asked)."""
    return {"pull_request": delivered.to_json() if delivered is not None else None}


def tell(delivered: Delivery | None, json_: bool) -> None:
    """Its one line: on stdout, or with --json (whose stdout has the URL) on stderr unless
    the pull request is open."""
    if delivered is None:
        return
    if not json_:
        say(delivered.line)
    elif not delivered.opened:
        err.print(delivered.line, soft_wrap=True, markup=False)


def finished(said: str, *, pr: bool | None, db: str | None, run: str | None, json_: bool) -> None:
    """`conductor resume` of a run that finished (`said` says so): with --pr, delivered now.
    Again is safe: a push of what is there already changes nothing, and gh names the pull
    request already open for the branch."""
    delivered = deliver(None, True, db, run) if pr else None
    if json_ and delivered is not None:
        err.print(said, soft_wrap=True, markup=False)
        print_json(as_json(delivered))
        tell(delivered, json_)
        return
    say(said)
    tell(delivered, json_)
