"""The coordination tools every headless session gets: the bus, as in-process MCP tools.

No shell round trip: the model calls `mcp__bus__sync` and the Python function runs in the
supervisor's process, on the same bus the CLI uses. Every tool answers with text the model
can act on; a bad call (an unknown session, a claimed path) comes back as a tool error the
model reads, never as an exception that would end the session.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from claude_agent_sdk import McpSdkServerConfig, SdkMcpTool, create_sdk_mcp_server, tool

from conductor import actions
from conductor.bus import Bus
from conductor.errors import ConductorError, InvalidInput
from conductor.models import Message, Review, SessionStatus
from conductor.paths import normalize

SERVER_NAME = "bus"
TOOL_PREFIX = f"mcp__{SERVER_NAME}__"

Handler = Callable[[dict[str, Any]], Awaitable[str]]


def _schema(required: dict[str, str], optional: dict[str, str] | None = None) -> dict[str, Any]:
    props = {k: {"type": "string", "description": v} for k, v in required.items()}
    props.update({k: {"type": "string", "description": v} for k, v in (optional or {}).items()})
    return {"type": "object", "properties": props, "required": list(required)}


def _as_tool(
    name: str, description: str, schema: dict[str, Any], handler: Handler
) -> SdkMcpTool[Any]:
    @tool(name, description, schema)
    async def call(args: dict[str, Any]) -> dict[str, Any]:
        try:
            text = await handler(args)
        except ConductorError as e:
            return {"content": [{"type": "text", "text": f"error: {e}"}], "is_error": True}
        except (KeyError, ValueError, TypeError) as e:
            return {
                "content": [{"type": "text", "text": f"error: bad arguments: {e}"}],
                "is_error": True,
            }
        return {"content": [{"type": "text", "text": text}]}

    return call


def describe(messages: list[Message]) -> list[str]:
    return [f'MSG #{m.id} from={m.sender or "conductor"}: "{m.body}"' for m in messages]


def coordination_server(
    bus: Bus,
    name: str,
    worktree: Path,
    *,
    review_base: str | None = None,
    request: Callable[[str], Awaitable[Review]] | None = None,
    extra: Sequence[SdkMcpTool[Any]] = (),
    coordinates: bool = True,
    claimable: Callable[[str], Awaitable[str | None]] | None = None,
) -> McpSdkServerConfig:
    """The `bus` MCP server for session `name`, whose working tree is `worktree`. Without
    `coordinates` (a reviewer) it serves only `extra`: a reviewer reads and decides; it
    claims, commits and asks for review of nothing, least of all in its author's tree."""
    own = coordination_tools(
        bus, name, worktree, review_base=review_base, request=request, claimable=claimable
    )
    tools = [*(own if coordinates else []), *extra]
    return create_sdk_mcp_server(SERVER_NAME, tools=tools)


def coordination_tools(
    bus: Bus,
    name: str,
    worktree: Path,
    *,
    review_base: str | None = None,
    request: Callable[[str], Awaitable[Review]] | None = None,
    claimable: Callable[[str], Awaitable[str | None]] | None = None,
) -> list[SdkMcpTool[Any]]:
    """`review_base`: what a review's diff is taken against (a run's integration branch);
    by default the commit the run started from. `request`: the review gate a supervised
    session's requests go through (it checks the branch, collects it, assigns the reviewer);
    by default the request is made on the bus as by hand."""

    async def ask_review(note: str) -> Review:
        if request is not None:
            return await request(note)
        return await actions.request_review(bus, name, worktree, base=review_base, note=note)

    async def sync(args: dict[str, Any]) -> str:
        result = await bus.sync(name)
        lines = describe(result.messages) + [
            f'CTX [{c.category.value}] by={c.author or "conductor"}: "{c.body}"'
            for c in result.context
        ]
        return "\n".join(lines) if lines else "Nothing new."

    async def send(args: dict[str, Any]) -> str:
        message = await bus.send(name, args["to"], args["text"])
        return f"Message #{message.id} sent to {', '.join(message.recipients) or 'nobody'}."

    async def reply(args: dict[str, Any]) -> str:
        message = await bus.reply(name, int(args["message_id"]), args["text"])
        return f"Reply #{message.id} sent to {', '.join(message.recipients)}."

    async def context_add(args: dict[str, Any]) -> str:
        entry = await bus.add_context(name, args["category"], args["text"])
        return f"Context #{entry.id} [{entry.category.value}] added; every session will see it."

    async def context_show(args: dict[str, Any]) -> str:
        entries = await bus.context(args.get("category") or None)
        lines = [f"#{e.id} [{e.category.value}] by={e.author}: {e.body}" for e in entries]
        return "\n".join(lines) if lines else "No shared context yet."

    async def claim(args: dict[str, Any]) -> str:
        if claimable is not None:  # a run's rule: no claim over what another workstream owns
            refused = await claimable(normalize(args["path"], worktree))
            if refused is not None:
                raise InvalidInput(refused)
        claimed = await bus.claim(name, args["path"], root=worktree)
        return f"{claimed.path} is yours: no other session may write it until you release it."

    async def release(args: dict[str, Any]) -> str:
        released = await bus.release(name, args["path"], root=worktree)
        return f"Released {released.path}."

    async def set_status(args: dict[str, Any]) -> str:
        status = SessionStatus.parse(args["status"])
        if status not in (SessionStatus.WORKING, SessionStatus.BLOCKED):
            raise InvalidInput("set_status takes working, or blocked with a reason")
        reason = args.get("reason", "")
        if status is SessionStatus.BLOCKED and not reason.strip():
            raise InvalidInput("say what you are blocked on in 'reason'")
        session = await bus.update(name, status=status, note=reason)
        return f"Status: {session.status.value}" + (f" ({reason})" if reason else "") + "."

    async def request_review(args: dict[str, Any]) -> str:
        review = await ask_review(args.get("note", ""))
        return (
            f"Review #{review.id} requested for commit {review.commit[:12]}"
            f" ({review.diff_size} bytes of diff). You will get the verdict as a message."
        )

    async def done(args: dict[str, Any]) -> str:
        """Finished means: reviewed, then merged. Ask for review of the head unless that
        was asked already, and wait for the verdict."""
        summary = args.get("summary", "")
        latest = await bus.latest_review(name)
        answer = ""
        if request is not None or latest is None:
            # The gate re-checks the branch (commits, nothing uncommitted) each time, and
            # asks for a review only of a head that has none yet.
            review = await ask_review(summary)
            if latest is None or review.id != latest.id:
                answer = f"Review #{review.id} requested for commit {review.commit[:12]}. "
        else:
            _, head = await actions.session_head(bus, name, worktree)
            if latest.commit != head:
                answer = await request_review({"note": summary}) + " "
        await bus.update(name, status=SessionStatus.REVIEW, note=summary or "done")
        return answer + "Marked done: waiting for review and the merge gate."

    return [
        _as_tool(
            "sync",
            "Your new messages and new shared context since your last sync. Call it between tasks.",
            _schema({}),
            sync,
        ),
        _as_tool(
            "send",
            "Send a message to one session (its id) or to 'all'.",
            _schema({"to": "session id or 'all'", "text": "the message"}),
            send,
        ),
        _as_tool(
            "reply",
            "Answer a message you received; it goes to its sender.",
            _schema({"message_id": "the message's number", "text": "the reply"}),
            reply,
        ),
        _as_tool(
            "context_add",
            "Share a decision, interface, warning, convention or discovery with every session.",
            _schema(
                {"category": "decision|interface|warning|convention|discovery", "text": "the entry"}
            ),
            context_add,
        ),
        _as_tool(
            "context_show",
            "All shared context, optionally of one category.",
            _schema({}, {"category": "only this category"}),
            context_show,
        ),
        _as_tool(
            "claim",
            "Claim a file or directory (relative to your worktree) so no other session writes it.",
            _schema({"path": "file or directory"}),
            claim,
        ),
        _as_tool(
            "release",
            "Release a path you claimed.",
            _schema({"path": "a path you claimed"}),
            release,
        ),
        _as_tool(
            "set_status",
            "Say you are working, or blocked (with the reason).",
            _schema({"status": "working or blocked"}, {"reason": "what blocks you"}),
            set_status,
        ),
        _as_tool(
            "request_review",
            "Ask for review of your committed work on your branch.",
            _schema({}, {"note": "a word to the reviewer"}),
            request_review,
        ),
        _as_tool(
            "done",
            "Say your workstream is finished (after committing it).",
            _schema({}, {"summary": "what you did"}),
            done,
        ),
    ]


def reviewer_tools(bus: Bus, name: str, review_id: int | None = None) -> list[SdkMcpTool[Any]]:
    """What a reviewer adds to the bus tools: a review's diff, and its verdict with comments.
    Every worker has them too, for the peer policy. Who decides is where the call is made:
    the store lets only the review's assigned reviewer decide it. `review_id` is the review
    the session was given, used when the model does not name one."""

    async def review_show(args: dict[str, Any]) -> str:
        given = args.get("review_id") or review_id
        if given is None:
            raise InvalidInput("name the review_id to show")
        review = await bus.review(int(given))
        head = (
            f"Review #{review.id} of {review.requester}, commit {review.commit[:12]},"
            f" {review.status.value}" + (f", for {review.reviewer}" if review.reviewer else "")
        )
        note = f"\nNote: {review.note}" if review.note else ""
        return f"{head}{note}\n\n" + review.diff.decode("utf-8", "replace")

    async def review_verdict(args: dict[str, Any]) -> str:
        verdict = str(args["verdict"]).strip().lower()
        if verdict not in ("approve", "reject"):
            raise InvalidInput("verdict is approve or reject")
        comments = str(args.get("comments", ""))
        if verdict == "reject" and not comments.strip():
            raise InvalidInput("say what to fix in 'comments' when you reject")
        given = args.get("review_id") or review_id
        if given is None:
            raise InvalidInput("name the review_id you decide")
        review = await bus.decide(int(given), name, approve=verdict == "approve", comment=comments)
        return f"Review #{review.id} {review.status.value}; {review.requester} is told."

    return [
        _as_tool(
            "review_show",
            "Show a review: who asked, the commit, and its diff.",
            _schema({}, {"review_id": "the review's number (default: the one you were given)"}),
            review_show,
        ),
        _as_tool(
            "review_verdict",
            "Approve or reject the review you were given, with comments the author can act on.",
            _schema(
                {"verdict": "approve or reject"},
                {
                    "review_id": "the review's number (default: the one you were given)",
                    "comments": "what is good, what to fix",
                },
            ),
            review_verdict,
        ),
    ]
