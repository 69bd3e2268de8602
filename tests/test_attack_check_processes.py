"""Attack: a merge check (code a session wrote) acts on processes, in time or in space.

The check jail (`command_jail`) has no process namespace of its own: it sees the host's
`/proc`, and inside its user namespace it is the same kernel uid as conductor, so it may
signal any of conductor's processes. And nothing ends what it leaves running: a daemon it
forks keeps the integration tree writable after the check, into the next merge.
Green = defended.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import anyio
import pytest
from support import git

from conductor.gates import MergeGate, MergeStatus

pytestmark = [
    pytest.mark.anyio,
]

RUN = "20261124-000000-beef"
CHECK = f'{sys.executable} -c "import core"'


def branch_with(repo: Path, name: str, files: dict[str, str]) -> str:
    git(repo, "checkout", "-q", "-b", name, "main")
    for path, text in files.items():
        (repo / path).write_text(text)
        git(repo, "add", path)
    git(repo, "commit", "-qm", name)
    head = git(repo, "rev-parse", "HEAD")
    git(repo, "checkout", "-q", "main")
    return head


def gate(repo: Path) -> MergeGate:
    base = git(repo, "rev-parse", "main")
    return MergeGate(repo, RUN, base_commit=base, checks=[CHECK], jailed=True)


# A daemon, forked off and detached, that writes into the integration tree after the check.
DAEMON = r"""
import os, pathlib, time
tree = pathlib.Path.cwd()
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        time.sleep(1.5)
        (tree / "left-by-a-check").write_text("still here\n")
        os._exit(0)
    os._exit(0)
"""


async def test_a_check_leaves_nothing_running_after_it(repo: Path) -> None:
    a = branch_with(repo, "feat-a", {"core.py": DAEMON})
    g = gate(repo)
    outcome = await g.merge("feat-a", a)
    assert outcome.status is MergeStatus.MERGED, outcome.output
    await anyio.sleep(2.5)
    assert not (g.tree / "left-by-a-check").exists(), "a check's daemon outlived the check"


# A process of conductor's (here a stand-in the test starts, as conductor's user), found by
# its command line through /proc and signalled from inside the check's jail.
SIGNAL = r"""
import os, signal
for pid in os.listdir("/proc"):
    try:
        cmd = open(f"/proc/{pid}/cmdline", "rb").read()
    except OSError:
        continue
    if b"conductor-stand-in-for-the-supervisor" in cmd:
        os.kill(int(pid), signal.SIGKILL)
"""


def start_victim() -> subprocess.Popen[bytes]:
    """A process of conductor's user outside any jail, named so the check can find it."""
    argv = [
        sys.executable,
        "-c",
        "import time; time.sleep(60)",
        "conductor-stand-in-for-the-supervisor",
    ]
    return subprocess.Popen(argv)


async def test_a_check_cannot_signal_conductors_processes(repo: Path) -> None:
    victim = start_victim()
    try:
        a = branch_with(repo, "feat-a", {"core.py": SIGNAL})
        await gate(repo).merge("feat-a", a)
        await anyio.sleep(0.2)
        assert victim.poll() is None, "a check killed a process outside its jail"
    finally:
        if victim.poll() is None:
            os.kill(victim.pid, signal.SIGKILL)
        victim.wait()
