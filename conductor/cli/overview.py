"""The one-shot dashboard: sessions, claims, pending reviews, the lock and recent events in
one look (`conductor dashboard`)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from conductor import dashboard
from conductor.bus import Bus
from conductor.cli.common import JsonOpt, RunOpt, app, out, print_json, with_bus
from conductor.workspace import Workspace


@app.command("dashboard", rich_help_panel="Watch")
def show_dashboard(
    ctx: typer.Context,
    events: Annotated[int, typer.Option("--events", min=0, help="How many recent events.")] = 10,
    _run: RunOpt = None,
    json_: JsonOpt = False,
) -> None:
    """One look at everything: sessions, claims, reviews, the lock, recent events."""

    async def go(bus: Bus, ws: Workspace) -> Any:
        return (
            bus.run,
            await bus.seen_state(),
            await bus.sessions(),
            await bus.unread_counts(),
            await bus.claims(),
            await bus.reviews(status="pending"),
            await bus.lock(),
            await bus.events(limit=events, newest=True),
        )

    run, state, sessions, unread, found_claims, reviews, lease, recent = with_bus(ctx, go)
    if json_:
        print_json(
            {
                "run": {**run.to_json(), "state": state},
                "sessions": [{**s.to_json(), "unread": unread.get(s.name, 0)} for s in sessions],
                "claims": [c.to_json() for c in found_claims],
                "pending_reviews": [r.to_json() for r in reviews],
                "lock": lease.to_json() if lease else None,
                "events": [e.to_json() for e in recent],
            }
        )
        return
    out.print(
        dashboard.dashboard(run, sessions, unread, found_claims, reviews, lease, recent, state)
    )
