"""Planning, shown while it happens: a line when it starts, the time it has taken and what the
planner does while it runs (a live line on a terminal, a plain line every TICK seconds
otherwise), and a line when the plan is there. Without them, a planner that reads a large
repository, or waits on a slow API, looks exactly like a hang.
"""

from __future__ import annotations

import anyio
from rich.console import Console
from rich.live import Live
from rich.text import Text

from conductor.planner import Planned, Planning
from conductor.text import escape_controls, one_line

TICK = 10.0  # seconds between plain lines
REDRAW = 0.5  # seconds between redraws of the live line


async def plan_shown(
    planning: Planning, *, console: Console, live: bool, max_sessions: int, model: str | None
) -> Planned:
    """`planning`'s plan, its progress shown on `console`."""
    with_model = f" ({model})" if model else ""
    _say(
        console,
        f"planning{with_model}: a read-only Claude Code session reads the repository and splits"
        f" the goal into at most {max_sessions} workstreams",
    )
    began = anyio.current_time()
    latest = ""

    def on_step(step: str) -> None:
        nonlocal latest
        latest = escape_controls(one_line(step))

    def line() -> str:
        doing = f": {latest}" if latest else ""
        return f"planning, {anyio.current_time() - began:.0f} s{doing}"

    async def show_live() -> None:
        with Live(Text(line()), console=console, auto_refresh=False, transient=True) as view:
            while True:
                await anyio.sleep(REDRAW)
                view.update(Text(line()), refresh=True)

    async def show_plain() -> None:
        while True:
            await anyio.sleep(TICK)
            _say(console, line())

    failed: Exception | None = None
    async with anyio.create_task_group() as tg:
        tg.start_soon(show_live if live else show_plain)
        try:
            planned = await planning(on_step)
        except Exception as e:  # raised out of the group it would come wrapped
            failed = e
        finally:
            tg.cancel_scope.cancel()
    if failed is not None:
        raise failed
    count = len(planned.plan.workstreams)
    _say(
        console,
        f"planned {count} workstream{'' if count == 1 else 's'} in"
        f" {anyio.current_time() - began:.0f} s (${planned.spend.cost_usd:.4f})",
    )
    return planned


def _say(console: Console, text: str) -> None:
    console.print(text, markup=False, highlight=False, soft_wrap=True)
