"""Telling the machine's failures from the work's: a full or read-only disk is a machine
fault, found by asking the disk itself (a real tmpfs, filled)."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import anyio
import pytest
from support import commit_file, fill, git, small_disk

from conductor import gitops, machine
from conductor.errors import GitError, MachineFault

pytestmark = pytest.mark.anyio

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small disk needs root")


async def test_a_disk_with_room_is_no_fault(tmp_path: Path) -> None:
    assert machine.disk_trouble(tmp_path) is None
    await machine.probe([tmp_path])
    assert list(tmp_path.iterdir()) == []  # the probe leaves nothing


def test_a_fault_is_found_inside_the_groups_task_groups_raise() -> None:
    fault = MachineFault("disk full")
    nested = ExceptionGroup("outer", [ValueError("x"), ExceptionGroup("inner", [fault])])
    assert machine.fault_in(nested) is fault
    assert machine.fault_in(ValueError("x")) is None


def test_an_os_error_of_the_disks_raised_raw_is_a_fault_too() -> None:
    full = OSError(errno.ENOSPC, "No space left on device", "/repo/.conductor/x")
    fault = machine.fault_in(ExceptionGroup("tasks", [full]))
    assert fault is not None and str(fault) == "/repo/.conductor/x: No space left on device"
    assert machine.fault_in(OSError(errno.EACCES, "Permission denied")) is None


@needs_root
async def test_a_full_disk_is_a_machine_fault_to_the_probe_and_to_git(tmp_path: Path) -> None:
    async with small_disk(tmp_path / "disk", size="4m") as disk:
        git(disk, "init", "-q")
        commit_file(disk, "a.txt", "a\n")
        await anyio.to_thread.run_sync(fill, disk / "filler")
        assert "is full" in (machine.disk_trouble(disk) or "")
        with pytest.raises(MachineFault, match="cannot be written"):
            await machine.probe([disk])
        with pytest.raises(GitError) as failed:  # git says "couldn't write ...lock" alone
            await gitops.git(["update-ref", "refs/heads/x", "HEAD"], disk)
        assert isinstance(failed.value, MachineFault)


async def test_a_fifo_planted_where_the_probe_writes_neither_blocks_nor_stays(
    tmp_path: Path,
) -> None:
    os.mkfifo(tmp_path / f".conductor-probe-{os.getpid()}")  # a session's, in its .git
    with anyio.fail_after(10):
        await machine.probe([tmp_path])
    assert list(tmp_path.iterdir()) == []
