"""The coordination commands, run as the real `conductor` process in a real repository."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from support import Cli, git, one_line_error

# ------------------------------------------------------------------------------ where state lives


def test_state_lives_in_dot_conductor_at_the_repository_root(team: Cli, repo: Path) -> None:
    assert (repo / ".conductor" / "conductor.db").is_file()


def test_state_folder_is_ignored_by_git_without_touching_gitignore(team: Cli, repo: Path) -> None:
    assert git(repo, "status", "--porcelain") == ""
    assert not (repo / ".gitignore").exists()


def test_state_is_found_from_a_subdirectory(team: Cli, repo: Path) -> None:
    deep = repo / "src" / "deep"
    deep.mkdir(parents=True)
    names = [s["name"] for s in team.ok("status", "--json", cwd=deep).json()]
    assert names == ["A", "B", "C"]
    assert not (deep / ".conductor").exists()


def test_state_is_found_from_a_linked_worktree(team: Cli, repo: Path, tmp_path: Path) -> None:
    git(repo, "worktree", "add", "-q", "-b", "side", str(tmp_path / "wt"))
    names = [s["name"] for s in team.ok("status", "--json", cwd=tmp_path / "wt").json()]
    assert names == ["A", "B", "C"]


def test_db_option_puts_the_database_elsewhere(cli: Cli, repo: Path, tmp_path: Path) -> None:
    db = tmp_path / "elsewhere.db"
    cli.ok("--db", str(db), "init", "--sessions", "A:x")
    assert db.is_file()
    assert not (repo / ".conductor" / "conductor.db").exists()
    assert cli.ok("--db", str(db), "status", "--json").json()[0]["name"] == "A"


def test_conductor_db_variable_puts_the_database_elsewhere(cli: Cli, tmp_path: Path) -> None:
    db = tmp_path / "env.db"
    cli.ok("init", "--sessions", "A:x", CONDUCTOR_DB=str(db))
    assert db.is_file()
    assert cli.ok("status", "--json", CONDUCTOR_DB=str(db)).json()[0]["name"] == "A"


@pytest.mark.parametrize(
    ("make_db", "complaint"),
    [
        (
            lambda tmp: tmp.joinpath("junk.db").write_text("not sqlite") and tmp / "junk.db",
            "file is not a database",
        ),
        (lambda tmp: tmp / "file.txt" / "sub" / "c.db", "no database at"),  # status reads
    ],
)
def test_a_database_that_cannot_be_used_is_a_one_line_error(
    process_cli: Cli, tmp_path: Path, make_db: Any, complaint: str
) -> None:
    (tmp_path / "file.txt").write_text("a file, not a folder")
    db = make_db(tmp_path)
    assert complaint in one_line_error(process_cli.fails("--db", str(db), "status"))
    if db.name == "junk.db":
        assert db.read_text() == "not sqlite"  # untouched


def test_outside_a_git_repository_is_a_one_line_error(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    result = Cli(plain, process=True).fails("status")
    assert "not a git repository" in one_line_error(result)


def test_before_any_run_commands_say_how_to_start_one(cli: Cli) -> None:
    assert "conductor init" in one_line_error(cli.fails("status"))


def test_run_option_picks_an_older_run(cli: Cli) -> None:
    first = cli.ok("init", "--sessions", "A:one", "--json").json()["run"]["id"]
    cli.ok("init", "--sessions", "X:two")
    assert cli.ok("status", "--json").json()[0]["name"] == "X"
    assert cli.ok("--run", first, "status", "--json").json()[0]["name"] == "A"
    assert cli.ok("status", "--json", CONDUCTOR_RUN=first).json()[0]["name"] == "A"


def test_unknown_run_is_a_one_line_error(team: Cli) -> None:
    assert "unknown run" in one_line_error(team.fails("--run", "nope-123", "status"))


# ------------------------------------------------------------------------------ sessions


def test_init_registers_sessions_with_their_workstreams(team: Cli) -> None:
    rows = team.ok("status", "--json").json()
    assert [(r["name"], r["workstream"], r["status"]) for r in rows] == [
        ("A", "frontend", "pending"),
        ("B", "backend", "pending"),
        ("C", "infra", "pending"),
    ]


def test_init_refuses_a_malformed_session_list(cli: Cli) -> None:
    assert "twice" in one_line_error(cli.fails("init", "--sessions", "A:x A:y"))
    assert "bad session id" in one_line_error(cli.fails("init", "--sessions", "1:x"))


def test_update_sets_status_and_note(team: Cli) -> None:
    team.ok("update", "A", "--status", "blocked", "--note", "waiting on B for types")
    row = team.ok("status", "--json").json()[0]
    assert (row["status"], row["note"]) == ("blocked", "waiting on B for types")


def test_update_accepts_claude_swarms_running_as_working(team: Cli) -> None:
    team.ok("update", "A", "--status", "running")
    assert team.ok("status", "--json").json()[0]["status"] == "working"


def test_update_refuses_a_status_outside_the_closed_set(team: Cli) -> None:
    line = one_line_error(team.fails("update", "A", "--status", "sleeping"))
    assert "unknown status" in line and "blocked" in line


@pytest.mark.parametrize(
    "args",
    [
        ["sync", "--session", "Z"],
        ["inbox", "--session", "Z"],
        ["message", "Z", "hi", "--from", "A"],
        ["message", "B", "hi", "--from", "Z"],
        ["update", "Z", "--status", "working"],
        ["context", "add", "x", "--session", "Z"],
        ["claim", "src", "--session", "Z"],
        ["claims", "--session", "Z"],
        ["review", "request", "--from", "Z", "--diff", "x"],
        ["merge-ok", "Z"],
        ["commit", "x", "--session", "Z", "--all"],
    ],
)
def test_an_unknown_session_id_is_an_error_everywhere(team: Cli, args: list[str]) -> None:
    assert "unknown session 'Z'" in one_line_error(team.fails(*args))


# ------------------------------------------------------------------------------ messages, sync


def test_sync_prints_nothing_when_nothing_is_new(team: Cli) -> None:
    assert team.ok("sync", "--session", "A").out == ""


def test_sync_prints_new_messages_and_context_once(team: Cli) -> None:
    team.ok("message", "A", "Auth types are exported now", "--from", "B")
    team.ok("context", "add", "JWT for auth", "--session", "C", "--category", "decision")
    first = team.ok("sync", "--session", "A").out.splitlines()
    assert first == [
        "[SYNC] 1 new message(s), 1 new context",
        'MSG #1 from=B: "Auth types are exported now"',
        'CTX [decision] by=C: "JWT for auth"',
    ]
    assert team.ok("sync", "--session", "A").out == ""


def test_sync_is_a_heartbeat(team: Cli) -> None:
    team.ok("sync", "--session", "B")
    rows = {r["name"]: r for r in team.ok("status", "--json").json()}
    assert rows["B"]["last_seen_at"] is not None and rows["A"]["last_seen_at"] is None


def test_broadcast_reaches_every_other_session(team: Cli) -> None:
    sent = team.ok("message", "all", "standup in 5", "--from", "A", "--json").json()
    assert sent["recipients"] == ["B", "C"] and sent["broadcast"] is True
    assert [m["body"] for m in team.ok("inbox", "--session", "C", "--json").json()] == [
        "standup in 5"
    ]
    assert team.ok("inbox", "--session", "A", "--json").json() == []


def test_inbox_does_not_mark_messages_read(team: Cli) -> None:
    team.ok("message", "B", "hello", "--from", "A")
    team.ok("inbox", "--session", "B")
    assert len(team.ok("inbox", "--session", "B", "--json").json()) == 1


def test_reply_goes_to_the_sender_and_marks_the_original_read(team: Cli) -> None:
    team.ok("message", "B", "Can you expose the auth types?", "--from", "A")
    answer = team.ok("reply", "1", "Done", "--from", "B", "--json").json()
    assert answer["recipients"] == ["A"] and answer["reply_to"] == 1
    assert team.ok("inbox", "--session", "B", "--json").json() == []
    read = team.ok("inbox", "--session", "B", "--all", "--json").json()
    assert read[0]["read_at"] is not None


def test_only_the_addressee_can_reply_or_mark(team: Cli) -> None:
    team.ok("message", "B", "for B only", "--from", "A")
    assert "not addressed to C" in one_line_error(team.fails("reply", "1", "x", "--from", "C"))
    assert "not addressed to C" in one_line_error(team.fails("mark-read", "1", "--session", "C"))


def test_mark_read_marks_one_message(team: Cli) -> None:
    team.ok("message", "B", "one", "--from", "A")
    team.ok("message", "B", "two", "--from", "A")
    team.ok("mark-read", "1", "--session", "B")
    assert [m["body"] for m in team.ok("inbox", "--session", "B", "--json").json()] == ["two"]


def test_unknown_message_is_an_error(team: Cli) -> None:
    assert "unknown message #99" in one_line_error(team.fails("reply", "99", "x", "--from", "B"))


def test_session_defaults_from_conductor_session(team: Cli) -> None:
    team.ok("message", "B", "via env", CONDUCTOR_SESSION="A")
    assert team.ok("inbox", "--json", CONDUCTOR_SESSION="B").json()[0]["sender"] == "A"


# ------------------------------------------------------------------------------ context


def test_context_show_filters_by_category(team: Cli) -> None:
    team.ok("context", "add", "snake_case fields", "-s", "A", "-c", "convention")
    team.ok("context", "add", "POST /users -> {id}", "-s", "B", "-c", "interface")
    everything = team.ok("context", "show", "--json").json()
    assert [e["category"] for e in everything] == ["convention", "interface"]
    only = team.ok("context", "show", "--category", "interface", "--json").json()
    assert [e["body"] for e in only] == ["POST /users -> {id}"]


def test_context_refuses_an_unknown_category(team: Cli) -> None:
    line = one_line_error(team.fails("context", "add", "x", "-s", "A", "-c", "gossip"))
    assert "unknown category" in line and "discovery" in line


# ------------------------------------------------------------------------------ claims


def test_claim_normalises_spellings_to_one_path(team: Cli, repo: Path) -> None:
    team.ok("claim", f"{repo}/src/./core/../core/", "--session", "A")
    assert [c["path"] for c in team.ok("claims", "--json").json()] == ["src/core"]
    assert "src/core" in one_line_error(team.fails("claim", "./src/core", "--session", "B"))


def test_claim_from_a_subdirectory_is_relative_to_it(team: Cli, repo: Path) -> None:
    (repo / "src").mkdir()
    team.ok("claim", "core/", "--session", "A", cwd=repo / "src")
    assert [c["path"] for c in team.ok("claims", "--json").json()] == ["src/core"]


def test_directory_claim_blocks_a_file_inside_it_and_names_the_owner(team: Cli) -> None:
    team.ok("claim", "src/core/", "--session", "A")
    line = one_line_error(team.fails("claim", "src/core/x.py", "--session", "B"))
    assert "claimed by session A" in line


def test_claim_around_another_sessions_claim_conflicts(team: Cli) -> None:
    team.ok("claim", "src/a.py", "--session", "B")
    assert "session B" in one_line_error(team.fails("claim", "src", "--session", "A"))


@pytest.mark.parametrize("outside", ["../x", "/etc/passwd", "src/../../x"])
def test_claim_outside_the_repository_is_refused(team: Cli, outside: str) -> None:
    assert "outside the repository" in one_line_error(team.fails("claim", outside, "-s", "A"))


def test_only_the_owner_can_release_a_claim(team: Cli) -> None:
    team.ok("claim", "api/", "--session", "A")
    assert "claimed by session A" in one_line_error(team.fails("unclaim", "api", "-s", "B"))
    team.ok("unclaim", "api/", "--session", "A")
    assert team.ok("claims", "--json").json() == []


def test_a_sessions_claims_end_when_it_ends(team: Cli) -> None:
    team.ok("claim", "api/", "--session", "A")
    team.ok("update", "A", "--status", "done")
    assert team.ok("claims", "--json").json() == []
    team.ok("claim", "api/", "--session", "B")


# ------------------------------------------------------------------------------ literal text

MARKUP = ["[/tmp]", "[bold]loud[/bold]", "[red]x", ":bomb:", "[link=http://x]y[/link]"]


@pytest.mark.parametrize("text", MARKUP)
def test_text_that_looks_like_markup_prints_literally(team: Cli, text: str) -> None:
    team.ok("message", "B", text, "--from", "A")
    team.ok("context", "add", text, "--session", "A", "--category", "warning")
    team.ok("update", "C", "--note", text)
    assert text in team.ok("inbox", "--session", "B").out
    assert text in team.ok("context", "show").out
    assert text in team.ok("status").out
    assert text in team.ok("sync", "--session", "B").out
    assert text in team.ok("dashboard").out


def test_markup_in_an_error_message_prints_literally(team: Cli, process_cli: Cli) -> None:
    line = one_line_error(process_cli.fails("update", "A", "--status", "[/tmp]"))
    assert "[/tmp]" in line


def test_markup_prints_literally_from_the_real_process(team: Cli, process_cli: Cli) -> None:
    team.ok("message", "B", "[/tmp] [bold]x", "--from", "A")
    assert "[/tmp] [bold]x" in process_cli.ok("inbox", "--session", "B").out


# ------------------------------------------------------------------------------ --json


@pytest.mark.parametrize(
    "args",
    [
        ["status"],
        ["inbox", "--session", "B"],
        ["inbox", "--session", "B", "--all"],
        ["context", "show"],
        ["claims"],
        ["review", "list"],
        ["review", "show", "1"],
        ["lock", "show"],
        ["dashboard"],
        ["sync", "--session", "B"],
    ],
)
def test_every_listing_command_speaks_json(team: Cli, args: list[str]) -> None:
    team.ok("message", "B", "m", "--from", "A")
    team.ok("context", "add", "c", "--session", "A")
    team.ok("claim", "x/", "--session", "A")
    team.ok("review", "request", "--from", "A", "--diff", "d")
    assert team.ok(*args, "--json").json() is not None or args == ["lock", "show"]


def test_dashboard_shows_sessions_claims_reviews_and_events(team: Cli) -> None:
    team.ok("claim", "web/", "--session", "A")
    team.ok("update", "B", "--status", "blocked", "--note", "needs a person")
    team.ok("review", "request", "--from", "C", "--diff", "+x")
    out = team.ok("dashboard").out
    for expected in ("web", "blocked: B", "anyone", "claim.added", "git lock: free"):
        assert expected in out, expected


def test_help_lists_every_claude_swarm_command(cli: Cli) -> None:
    out = cli.ok("--help", COLUMNS="200").out
    for command in (
        "init",
        "status",
        "sync",
        "context",
        "message",
        "inbox",
        "reply",
        "update",
        "claim",
        "claims",
        "unclaim",
        "review",
        "merge-ok",
        "commit",
        "push",
        "pull",
        "git-status",
        "git-diff",
        "git-log",
        "dashboard",
    ):
        assert f" {command} " in out or f" {command}\n" in out, command


def test_no_test_leaks_conductor_variables() -> None:
    assert "CONDUCTOR_DB" not in os.environ and "CONDUCTOR_RUN" not in os.environ
