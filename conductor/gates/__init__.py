"""The two gates every branch passes, side by side: the review gate (who reviews, and the door
a review request goes through) and the merge gate (one serial queue onto the integration
branch, checks green). Each re-checks what a session did instead of trusting it."""

from conductor.gates.checks import CHECK_TIMEOUT, OUTPUT_TAIL_LINES, IntegrationTree
from conductor.gates.merge import (
    PUSH_LOCK_WAIT,
    MergeGate,
    MergeOutcome,
    MergeStatus,
    gate_record_ref,
    integration_branch,
)
from conductor.gates.review import (
    AgentReview,
    ReviewGate,
    agent_reviewer,
    ensure_reviewer,
    reviewer_for,
)
from conductor.models import ReviewPolicy

__all__ = [
    "CHECK_TIMEOUT",
    "OUTPUT_TAIL_LINES",
    "PUSH_LOCK_WAIT",
    "AgentReview",
    "IntegrationTree",
    "MergeGate",
    "MergeOutcome",
    "MergeStatus",
    "ReviewGate",
    "ReviewPolicy",
    "agent_reviewer",
    "ensure_reviewer",
    "gate_record_ref",
    "integration_branch",
    "reviewer_for",
]
