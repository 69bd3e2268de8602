"""No jail shows the person's browser profiles: from a browser's history a session's code
would learn where `conductor serve` listens, and from its cookies how to act there as the
person (an attack on the browser view went that way: History read from a merge check's
jail, a page on another port given the cookie)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from support import make_repo

from conductor.jail import command_jail, jails_supported, session_jail

pytestmark = pytest.mark.skipif(not jails_supported(), reason="needs bubblewrap (Linux)")

SECRET = "http://127.0.0.1:8765/PREFIX/"


def a_home_with_browsers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    for profile in (".config/chromium/Default", ".mozilla/firefox/x.default"):
        (home / profile).mkdir(parents=True)
        (home / profile / "History").write_text(SECRET)
    (home / "notes.txt").write_text("kept")
    monkeypatch.setenv("HOME", str(home))
    return home


def read_inside(argv: list[str]) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    return done.stdout + done.stderr


def test_a_merge_checks_jail_shows_no_browser_profile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = a_home_with_browsers(tmp_path, monkeypatch)
    tree, tmp = make_repo(tmp_path / "tree"), tmp_path / "tmp"
    tmp.mkdir()
    jail = command_jail(tree, tmp)
    history = home / ".config/chromium/Default/History"
    firefox = home / ".mozilla/firefox/x.default/History"
    shown = read_inside(jail.argv(["sh", "-c", f"cat {history} {firefox}; cat {home}/notes.txt"]))
    assert SECRET not in shown
    assert "kept" in shown  # the rest of the home is as it was


def test_a_sessions_jail_shows_no_browser_profile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = a_home_with_browsers(tmp_path, monkeypatch)
    worktree, config, tmp = make_repo(tmp_path / "wt"), tmp_path / "cfg", tmp_path / "tmp"
    for d in (config, tmp):
        d.mkdir()
    jail = session_jail(worktree, config, tmp)
    shown = read_inside(
        jail.argv(["sh", "-c", f"ls -R {home}/.config {home}/.mozilla; cat {home}/notes.txt"])
    )
    assert "History" not in shown and SECRET not in shown
    assert "kept" in shown
