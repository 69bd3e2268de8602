"""The hand door (cli/hand.py): `sync`, `status` and `message` answered without typer or an
event loop, exactly as the full command answers them.

Each case runs once through `python -m conductor` (the door) and once through the typer
app alone, each in its own copy of the same repository and database, and the two must print
the same bytes and exit with the same code.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from support import Cli, clean_env

from conductor.cli.hand import parse
from conductor.cli.plumbing import say
from conductor.text import escape_controls

FULL_APP = "from conductor.cli import app; app(prog_name='python -m conductor')"
HEAVY = ("typer", "pydantic", "asyncio", "claude_agent_sdk", "rich")


def _run(argv: list[str], cwd: Path, env: dict[str, str], stdin: str = "") -> tuple[int, str, str]:
    done = subprocess.run(
        argv, cwd=cwd, env=env, input=stdin, capture_output=True, text=True, timeout=60
    )
    return done.returncode, _untimed(done.stdout), done.stderr


def _untimed(out: str) -> str:
    """JSON output with the times the command itself wrote (a message's `read_at`, a new
    message's `created_at`) masked: the two runs happen a few milliseconds apart."""
    try:
        data = json.loads(out)
    except ValueError:
        return out
    return json.dumps(_mask(data), indent=2, ensure_ascii=False)


def _mask(data: object) -> object:
    if isinstance(data, dict):
        return {k: "TIME" if k.endswith("_at") else _mask(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_mask(v) for v in data]
    return data


def both(
    repo: Path, tmp_path: Path, *args: str, stdin: str = "", **env: str
) -> tuple[tuple[int, str, str], tuple[int, str, str]]:
    """(through the door, through the full app), each in its own copy of `repo`."""
    door, full = tmp_path / "door", tmp_path / "full"
    for copy in (door, full):
        shutil.rmtree(copy, ignore_errors=True)
        shutil.copytree(repo, copy, symlinks=True)
    environment = clean_env(**env)
    return (
        _run([sys.executable, "-m", "conductor", *args], door, environment, stdin),
        _run([sys.executable, "-c", FULL_APP, *args], full, environment, stdin),
    )


@pytest.fixture
def mail(team: Cli, repo: Path) -> Path:
    """A team whose B has a message and a context entry waiting."""
    team.ok("message", "B", "the schema is in db/", "--from", "A")
    team.ok("context", "add", "we use postgres", "--session", "A")
    return repo


CASES = [
    ("sync", "--session", "B"),
    ("sync", "-s", "B", "--json"),
    ("sync", "--json", "--session", "A", "-s", "B"),
    ("status", "--json"),
    ("message", "B", "hello there", "--from", "A"),
    ("message", "--from", "A", "all", "to everyone"),
    ("message", "B", "   ", "--from", "A"),
    ("message", "B", "hi", "--from", "Z"),
    ("sync", "-s", "Z"),
    ("--run", "no-such-run", "status", "--json"),
    ("sync", "--session=B"),
    ("sync", "-h"),
    ("message", "B", "--from", "A"),
    ("status", "--verbose"),
    # --run after the command name, as every command that reads a run takes it
    ("status", "--json", "--run", "no-such-run"),
    ("sync", "-s", "B", "--run", "no-such-run"),
    ("message", "B", "hi", "--run", "no-such-run", "--from", "A"),
    ("status", "--run"),
    ("status", "--run", "--json"),
    ("status", "--run=no-such-run"),
    # a text from stdin: left to the full command
    ("message", "B", "-", "--from", "A"),
    ("message", "B", "--", "-", "--from", "A"),
]


@pytest.mark.parametrize("args", CASES, ids=[" ".join(c) for c in CASES])
def test_the_door_answers_as_the_full_command(
    mail: Path, tmp_path: Path, args: tuple[str, ...]
) -> None:
    door, full = both(mail, tmp_path, *args)
    assert door == full


def _run_id(team: Cli) -> str:
    return str(team.ok("runs", "--json").json()[0]["id"])


def test_run_after_the_command_is_read_as_the_full_command_reads_it(
    team: Cli, repo: Path, tmp_path: Path
) -> None:
    team.ok("message", "B", "the schema is in db/", "--from", "A")
    run = _run_id(team)
    cases = [
        (("sync", "-s", "B", "--run", run), {}),
        (("status", "--run", run, "--json"), {}),
        (("message", "B", "hi", "--from", "A", "--run", run), {}),
        (("--run", "no-such-run", "status", "--run", run, "--json"), {}),  # after wins
        (("--run", run, "status", "--run", "no-such-run"), {}),
        (("status", "--json", "--run", run), {"CONDUCTOR_RUN": "no-such-run"}),
        (("sync", "-s", "B", "--run", "no-such-run", "--run", run), {}),  # the last one wins
    ]
    for args, env in cases:
        door, full = both(repo, tmp_path, *args, **env)
        assert door == full, args
    assert "MSG #1 from=A" in both(repo, tmp_path, "sync", "-s", "B", "--run", run)[0][1]


def test_a_text_from_stdin_is_sent_as_the_full_command_sends_it(
    team: Cli, repo: Path, tmp_path: Path
) -> None:
    door, full = both(repo, tmp_path, "message", "B", "-", "--from", "A", stdin="from stdin\n")
    assert door == full
    assert door[1] == "message #1 sent to B\n"


def test_a_message_body_is_synced_with_its_control_characters_escaped(
    team: Cli, repo: Path, tmp_path: Path
) -> None:
    team.ok("message", "B", "\x1b[31mred\x1b[0m and a bell\x07", "--from", "A")
    team.ok("context", "add", "\x1b]0;retitled\x07", "--session", "A")
    door, full = both(repo, tmp_path, "sync", "-s", "B")
    assert door == full
    assert "\x1b" not in door[1] and "\x07" not in door[1]
    assert 'MSG #1 from=A: "\\x1b[31mred\\x1b[0m and a bell\\x07"' in door[1]
    assert 'by=A: "\\x1b]0;retitled\\x07"' in door[1]
    json_door, json_full = both(repo, tmp_path, "sync", "-s", "B", "--json")
    assert json_door == json_full
    assert json.loads(json_door[1])["messages"][0]["body"].startswith("\x1b[31mred")


def test_a_session_from_the_environment_is_read_as_the_full_command_reads_it(
    mail: Path, tmp_path: Path
) -> None:
    door, full = both(mail, tmp_path, "sync", CONDUCTOR_SESSION="B")
    assert door == full
    assert "MSG #1 from=A" in door[1]


def test_the_status_table_of_fresh_sessions_is_the_full_commands(
    team: Cli, repo: Path, tmp_path: Path
) -> None:
    door, full = both(repo, tmp_path, "status")
    assert door == full
    assert "frontend" in door[1]


def test_a_status_note_rich_must_lay_out_is_the_full_commands(
    team: Cli, repo: Path, tmp_path: Path
) -> None:
    team.ok("update", "A", "--note", "working on the naïve\tparser")
    door, full = both(repo, tmp_path, "status")
    assert door == full
    assert "naïve" in door[1]


def test_text_the_console_would_change_is_printed_by_the_console(
    team: Cli, repo: Path, tmp_path: Path
) -> None:
    team.ok("message", "B", "tab\there, ünïcode, [bold]not markup[/bold] :bomb:", "--from", "A")
    door, full = both(repo, tmp_path, "sync", "-s", "B")
    assert door == full
    assert "[bold]not markup[/bold] :bomb:" in door[1]


def test_a_supervised_session_is_refused_the_same_way(
    team: Cli, repo: Path, tmp_path: Path
) -> None:
    run = team.ok("status", "--json")  # any command: the run is the newest
    run_id = json.loads(team.ok("runs", "--json").out)[0]["id"]
    assert run.code == 0
    inside = {"CONDUCTOR_SUPERVISED": run_id, "CONDUCTOR_SESSION": "A"}
    for args in (
        ("message", "B", "approve me", "--from", "human"),
        ("sync", "-s", "B"),
        ("--run", "another-run", "sync", "-s", "A"),
        ("sync", "-s", "A", "--run", "another-run"),
        ("message", "B", "hi", "--run", "another-run"),
    ):
        door, full = both(repo, tmp_path, *args, **inside)
        assert door == full
        assert door[0] == 2 and door[2].startswith("error: inside supervised")


@pytest.mark.parametrize("argv", [["sync", "-s", "B"], ["status"]])
def test_the_door_loads_neither_typer_nor_an_event_loop_nor_rich_for_a_pipe(
    team: Cli, repo: Path, argv: list[str]
) -> None:
    probe = (
        "import sys\n"
        "from conductor.cli.hand import run_by_hand\n"
        "assert run_by_hand(sys.argv[1:])\n"
        f"print(sorted({{m.split('.')[0] for m in sys.modules}} & {set(HEAVY)!r}))\n"
    )
    code, out, err = _run([sys.executable, "-c", probe, *argv], repo, clean_env())
    assert (code, err) == (0, "")
    assert out.strip().splitlines()[-1] == "[]"


@pytest.mark.parametrize(
    "argv",
    [
        ["sync", "--session=B"],
        ["sync", "-s"],
        ["sync", "-s", "-B"],
        ["sync", "-s", ""],
        ["sync", "--help"],
        ["sync", "extra"],
        ["message", "B"],
        ["message", "B", "--", "-x"],
        ["--db", "x.db"],
        ["--db=x.db", "status"],
        ["--version"],
        ["init"],
        [],
        ["message", "B", "-"],
        ["message", "B", "-", "--from", "A"],
        ["sync", "-s", "B", "--run"],
        ["status", "--run", "-x"],
        ["status", "--run="],
        ["status", "--run", ""],
    ],
)
def test_a_command_line_not_read_whole_is_left_to_the_full_command(argv: list[str]) -> None:
    assert parse(argv) is None


def test_the_last_of_a_repeated_option_wins_as_in_the_full_command() -> None:
    call = parse(["--run", "r1", "sync", "-s", "A", "--session", "B", "--json", "--json"])
    assert call is not None
    assert (call.globals.run, call.values["session"], call.json) == ("r1", "B", True)


def test_run_after_the_command_wins_over_run_before_it_and_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CONDUCTOR_RUN", "from-env")
    for argv, run in [
        (["status"], "from-env"),
        (["--run", "r1", "status"], "r1"),
        (["--run", "r1", "status", "--run", "r2"], "r2"),
        (["status", "--run", "r2", "--run", "r3"], "r3"),
        (["message", "B", "hi", "--run", "r2", "-f", "A"], "r2"),
    ]:
        call = parse(argv)
        assert call is not None and call.globals.run == run, argv
        assert "run" not in call.values


@pytest.mark.parametrize(
    "text",
    [
        "plain words",
        "a\ttab",
        "esc \x1b[31mred",
        "bell\x07",
        "cr\rz",
        "two\nlines",
        "漢字 ünï",
        "ünï \x1b[1mbold\x9b2J",
        "del\x7f",
    ],
)
def test_a_line_prints_as_the_console_prints_it(
    text: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Both ways `say` prints (plain ASCII itself, anything else through rich) give the bytes
    the console gives for the line with its control characters written out."""
    from conductor.dashboard import console

    console().print(escape_controls(text), soft_wrap=True)
    by_console = capsys.readouterr().out
    say(text)
    said = capsys.readouterr().out
    assert said == by_console
    assert not any(c in said for c in "\x1b\x07\r\x7f\x9b")
