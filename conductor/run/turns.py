"""A worker's turn as the run takes it: watched for signs of life, and the prompt a session
re-attached after a restart is owed (from its events, through `replay`)."""

from __future__ import annotations

import anyio

from conductor.events import EventKind
from conductor.run import replay
from conductor.run.started import StartedRun
from conductor.session import HeadlessSession, SessionDied, TurnResult
from conductor.tools import describe

REATTACHED = "conductor was restarted (its supervisor had stopped) and re-attached you."


async def watched_turn(run: StartedRun, session: HeadlessSession, prompt: str) -> TurnResult:
    """A turn, interrupted if the session shows no sign of life (no event) for
    stall_seconds; a stalled turn is then treated like a dead process: resumed."""
    bus, stall = run.bus, run.config.stall_seconds
    stalled = False

    async def watch() -> None:
        nonlocal stalled
        while True:
            await anyio.sleep(min(1.0, stall / 4))
            last = await bus.last_event(session.name)
            if last is not None and bus.now() - last.created_at > stall:
                stalled = True
                await bus.record(
                    session.name, EventKind.SESSION_STALLED, f"no event for {stall:.0f}s"
                )
                await session.interrupt()
                return

    died: SessionDied | None = None
    async with anyio.create_task_group() as tg:
        tg.start_soon(watch)
        try:
            result = await session.turn(prompt)
            run.ledger.account(session.name, result)
        except SessionDied as e:  # raised out of the group it would come wrapped
            died = e
        finally:
            tg.cancel_scope.cancel()
    if died is not None:
        raise died
    if stalled:
        raise SessionDied(f"session {session.name} stalled: no event for {stall:.0f}s")
    return result


async def resume_prompt(run: StartedRun, name: str, why: str = REATTACHED) -> str | None:
    """What a re-attached session is told, from its events: the prompt of the turn the
    supervisor died in, and the messages it was handed since its last finished turn (it
    may not have seen them). None when it was between turns with nothing owed to it."""
    owed = replay.owed_to(await run.bus.events(session=name))
    if owed.nothing:
        return None
    parts = [why]
    if owed.interrupted is not None:
        parts.append(replay.interrupted_turn(owed.interrupted))
    if owed.message_ids:
        messages = [await run.bus.message(i) for i in owed.message_ids]
        parts.append(
            "Messages handed to you while it stopped (you may have seen some already):\n"
            + "\n".join(describe(messages))
        )
    return "\n\n".join(parts)
