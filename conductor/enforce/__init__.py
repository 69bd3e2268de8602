"""What a session may not do, decided before the tool runs (the `PreToolUse` hooks' policy).

Pure decisions over a tool call; `session.py` wires them to the SDK's hooks and the bus.
Under `bypassPermissions` the SDK's `can_use_tool` is never called, so hooks are the gate.

This is the fast, friendly first refusal, with a reason the model can act on; the OS sandbox
is the real boundary. What it does judge, it judges soundly: a write is placed where it really
lands (through symlinks), and a shell command is read as the shell reads it (quotes, `&&`,
`sh -c`, `$(...)`), so `echo "git push"` is text and `FOO=1 git push` is a push.
"""

from conductor.enforce.pushes import PUSH_DENIAL, pushes
from conductor.enforce.writes import (
    WORKER_TOOLS,
    WRITE_TOOLS,
    protected_reason,
    write_target,
    written_path,
)

__all__ = [
    "PUSH_DENIAL",
    "WORKER_TOOLS",
    "WRITE_TOOLS",
    "protected_reason",
    "pushes",
    "write_target",
    "written_path",
]
