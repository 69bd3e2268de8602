"""One headless Claude Code session for one workstream, connected to the bus.

In parts: `config` (what starting one takes, what a turn gave back: plain data), `options`
(the SDK options, the jail, the system prompt), `hooks` (the write gate's friendly refusal,
mail during a turn), `stream` (each SDK message as an event), `headless` (its life: connect,
turns, close). Everything importers use is importable from here.
"""

from conductor.session.config import (
    SessionConfig,
    TurnResult,
    author_model,
    refuse_same_review_model,
    reviewer_model,
    role_model,
    worker_config,
)
from conductor.session.headless import (
    DISCONNECT_TIMEOUT,
    LOST_CONVERSATION,
    HeadlessSession,
    RequestReview,
    SessionDied,
)
from conductor.session.hooks import JUDGED_TOOLS, Owners, ToolHooks
from conductor.session.stream import describe as _describe
from conductor.session.stream import payload as _payload

__all__ = [
    "DISCONNECT_TIMEOUT",
    "JUDGED_TOOLS",
    "LOST_CONVERSATION",
    "HeadlessSession",
    "Owners",
    "RequestReview",
    "SessionConfig",
    "SessionDied",
    "ToolHooks",
    "TurnResult",
    "_describe",
    "_payload",
    "author_model",
    "refuse_same_review_model",
    "reviewer_model",
    "role_model",
    "worker_config",
]
