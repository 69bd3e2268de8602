"""Running a supervisor in the foreground: the live view and the notifications beside it,
and what Ctrl-C does.

Notifications ([notify] in conductor.toml, conductor.notify) follow the run's events in a
task of their own: a receiver never holds up the run, and when the run ends what is still
to be delivered gets a few seconds (`notify.follow.GRACE`), never more.

Ctrl-C once asks the supervisor to stop: its sessions are interrupted, the run is marked
`interrupted`, and the command that resumes it is printed. Ctrl-C again exits at once; the
store is still consistent, because every change to it was one transaction, and `conductor
resume` picks up from there as it would after a SIGKILL. SIGTERM counts as a first Ctrl-C.
"""

from __future__ import annotations

import gc
import os
import signal
from pathlib import Path

import anyio
from rich.console import Console

from conductor.bus import database_location, keep_checkpointed
from conductor.cli import hints
from conductor.cli.plumbing import EXIT_INTERRUPTED
from conductor.config import Notify, load_notify
from conductor.errors import ConductorError
from conductor.live import watch_run
from conductor.notify.deliver import receivers
from conductor.notify.follow import Notifier, Say
from conductor.supervisor import RunSummary, Supervisor


async def supervise(
    supervisor: Supervisor,
    *,
    console: Console,
    live: bool,
    after: int = 0,
    resumable: bool = True,
) -> RunSummary:
    """The supervisor's run, watched on `console` (live, or one line per notable event after
    event id `after`, so that a resumed run does not print its history again). Without
    `resumable` (the demo, whose stand-in model goes when it exits) Ctrl-C is left alone.
    A [notify] in conductor.toml that is wrong is refused before the run starts."""
    notify = load_notify(supervisor.repo)
    # Everything imported so far (the SDK, mcp, pydantic: a few hundred thousand objects)
    # lives as long as the process: moved out of the collector's sight, the run's full
    # collections do not walk it again and again, and the interpreter's exit does not
    # tear it down object by object (~0.25 s of every run's end on this machine).
    gc.freeze()
    summary: RunSummary | None = None
    error: ConductorError | None = None
    ended = anyio.Event()
    async with anyio.create_task_group() as notifying:  # waits for the notifications' grace
        if notify.enabled:
            notifying.start_soon(_notify, supervisor, notify, console, ended, after, resumable)
        try:
            async with anyio.create_task_group() as tg:
                if resumable:
                    tg.start_soon(_on_signals, supervisor, console)
                tg.start_soon(_watch, supervisor, console, live, after)
                tg.start_soon(keep_checkpointed, supervisor.store)  # no commit pays for one
                try:
                    summary = await supervisor.run()
                except ConductorError as e:  # raised out of the group it would come wrapped
                    error = e
                finally:
                    tg.cancel_scope.cancel()
        finally:
            ended.set()
    if error is not None:
        raise error
    assert summary is not None
    return summary


async def _watch(supervisor: Supervisor, console: Console, live: bool, after: int) -> None:
    """The view is only a window on the store: when it breaks, the run goes on without it."""
    await supervisor.started.wait()
    assert supervisor.run_id is not None
    try:
        await watch_run(
            supervisor.store, supervisor.run_id, console=console, live=live, after=after
        )
    except Exception as e:  # whatever it was, it must not end the run
        follow = _command(supervisor, "logs", supervisor.run_id, "-f")
        console.print(
            f"the run's view stopped ({type(e).__name__}: {e}); the run goes on: {follow}",
            soft_wrap=True,
            markup=False,
        )


async def _notify(
    supervisor: Supervisor,
    notify: Notify,
    console: Console,
    ended: anyio.Event,
    after: int,
    resumable: bool,
) -> None:
    """The run's notifications, from when it exists until it ended (and the grace after:
    Ctrl-C cuts it short). `after`: the last event before this process took the run."""
    await _first(supervisor.started, ended)
    if not supervisor.started.is_set() or supervisor.run_id is None:
        return  # it ended before this process held the run: nothing of it is this one's

    def say(line: str) -> None:
        console.print(line, soft_wrap=True, markup=False)

    notifier = Notifier(
        supervisor.store,
        supervisor.run_id,
        receivers(notify, supervisor.repo),
        wording=lambda *words: _command(supervisor, *words, cd=supervisor.repo),
        kinds=notify.on,
        history_end=after,
        say=say,
    )
    async with anyio.create_task_group() as tg:
        if resumable:
            tg.start_soon(_cut_short_by_a_signal, ended, tg.cancel_scope, say)
        await notifier.run(ended)
        tg.cancel_scope.cancel()


async def _cut_short_by_a_signal(ended: anyio.Event, scope: anyio.CancelScope, say: Say) -> None:
    """Once the run ended (Ctrl-C is then no longer the run's): a Ctrl-C or SIGTERM during
    the notifications' grace ends it at once, rather than the command with a traceback."""
    await ended.wait()
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for _ in signals:
            say("not waiting for the notifications still to go")
            scope.cancel()
            return


async def _first(*events: anyio.Event) -> None:
    """Until the first of `events` is set."""
    async with anyio.create_task_group() as tg:

        async def until(event: anyio.Event) -> None:
            await event.wait()
            tg.cancel_scope.cancel()

        for event in events:
            tg.start_soon(until, event)


async def _on_signals(supervisor: Supervisor, console: Console) -> None:
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        stopping = False
        async with anyio.create_task_group() as tg:
            async for signum in signals:
                run = supervisor.run_id
                if stopping and signum == signal.SIGINT:
                    console.show_cursor(True)  # the live view hid it; its exit will not run
                    then = f"; continue with: {_command(supervisor, 'resume', run)}" if run else ""
                    console.print(f"exiting at once{then}", soft_wrap=True, markup=False)
                    os._exit(EXIT_INTERRUPTED)
                if not stopping:
                    stopping = True
                    console.print(
                        "stopping: interrupting the sessions (Ctrl-C again to exit at once)",
                        soft_wrap=True,
                    )
                    tg.start_soon(supervisor.stop)


def _command(supervisor: Supervisor, *args: str, cd: Path | None = None) -> str:
    """A command on the supervisor's run, to paste (see hints.py); `cd`: in that directory
    (a notification is read anywhere)."""
    db = hints.db_unless_default(database_location(supervisor.store), supervisor.repo)
    return hints.command(*args, db=db, cd=cd)
