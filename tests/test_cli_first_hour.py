"""The command line as someone new meets it: `--version`, the help, shell completion, one way
to choose a run for every command, long text from stdin, and errors that are one line."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
from support import Cli, clean_env, one_line_error

# ------------------------------------------------------------------------------ --version, help


def test_version_is_the_installed_distributions(process_cli: Cli) -> None:
    done = process_cli.ok("--version")
    assert done.out == f"conductor {metadata.version('conductor-swarm')}\n"
    assert done.err == ""


def test_version_needs_no_repository(tmp_path: Path) -> None:
    assert Cli(tmp_path).ok("--version").out.startswith("conductor ")


@pytest.mark.parametrize("args", [[], ["context"], ["review"], ["lock"], ["model"]])
def test_a_bare_command_shows_its_help_and_that_is_no_error(
    process_cli: Cli, args: list[str]
) -> None:
    done = process_cli.ok(*args)
    assert done.out.startswith("Usage: ") and done.err == ""
    assert done.out == process_cli.ok(*args, "--help").out


def _listed(help_text: str) -> list[str]:
    """The command names of a help text, in the order it lists them."""
    names = []
    for line in help_text.splitlines():
        words = line.split()
        if line[:2] == "  " and line[2:3].strip() and not words[0].startswith("-"):
            names.append(words[0])
    return names


def test_help_lists_running_and_watching_before_the_hand_commands(cli: Cli) -> None:
    shown = cli.ok("--help").out
    listed = _listed(shown)
    first_hour = ["run", "resume", "demo", "runs", "show", "logs", "dashboard", "transcript"]
    by_hand = ["init", "status", "sync", "message", "commit", "push", "git-status", "lock"]
    assert set(first_hour + by_hand) <= set(listed)
    assert max(listed.index(c) for c in first_hour) < min(listed.index(c) for c in by_hand)
    sections = [line for line in shown.splitlines() if line.endswith(":") and line[0] != " "]
    assert sections[:2] == ["Options:", "Runs:"]
    assert sections.index("Watch:") < sections.index("Coordination:") < sections.index("Git:")


def test_help_aligns_every_section_on_one_column(cli: Cli) -> None:
    shown = cli.ok("--help").out
    commands = shown[shown.index("\nRuns:\n") :].splitlines()
    rows = [row for row in commands if row.startswith("  ") and row[2] != " "]
    assert len({len(row) - len(row[2:].split(maxsplit=1)[1]) for row in rows}) == 1


# ------------------------------------------------------------------------------ completion

# The completion scripts call `conductor` with these set; `prog` makes argv[0] `conductor`.
PROG = "import sys; sys.argv[0] = 'conductor'; from conductor.cli import main; main()"


def _complete(words: str, cwd: Path) -> list[str]:
    env = clean_env(
        _CONDUCTOR_COMPLETE="complete_bash",
        COMP_WORDS=words,
        COMP_CWORD=str(len(words.split()) - (0 if words.endswith(" ") else 1)),
    )
    done = subprocess.run(
        [sys.executable, "-c", PROG], cwd=cwd, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


@pytest.mark.parametrize(
    ("shell", "calls"),
    [
        ("bash", "_CONDUCTOR_COMPLETE=complete_bash"),
        ("zsh", "_CONDUCTOR_COMPLETE=complete_zsh"),
        ("fish", "_CONDUCTOR_COMPLETE=complete_fish"),
        ("powershell", '_CONDUCTOR_COMPLETE = "complete_powershell"'),
    ],
)
def test_completion_prints_the_script_for_a_shell(cli: Cli, shell: str, calls: str) -> None:
    script = cli.ok("completion", shell).out
    assert calls in script and "conductor" in script


def test_completion_of_an_unknown_shell_is_a_one_line_error(cli: Cli) -> None:
    assert "tcsh" in one_line_error(cli.fails("completion", "tcsh"))


def test_the_bash_script_completes_commands_and_options(repo: Path) -> None:
    script = Cli(repo).ok("completion", "bash").out
    checked = subprocess.run(["bash", "-n"], input=script, text=True, capture_output=True)
    assert checked.returncode == 0, checked.stderr
    assert _complete("conductor tra", repo) == ["transcript"]
    assert {"resume", "run", "runs"} <= set(_complete("conductor r", repo))
    assert "--run" in _complete("conductor transcript A --r", repo)
    assert _complete("conductor review ap", repo) == ["approve"]


# ------------------------------------------------------------------------------ choosing a run


@pytest.fixture
def two_runs(cli: Cli) -> tuple[Cli, str, str]:
    """An older run with A, B, C (A has a message waiting) and a newer one with X, Y."""
    older = cli.ok("init", "--sessions", "A:one B:two C:three", "--json").json()["run"]["id"]
    cli.ok("message", "A", "for the older run", "--from", "B")
    newer = cli.ok("init", "--sessions", "X:four Y:five", "--json").json()["run"]["id"]
    return cli, older, newer


def _names(result: Any) -> list[str]:
    return [s["name"] for s in result.json()]


def test_run_after_the_command_chooses_the_run(two_runs: tuple[Cli, str, str]) -> None:
    cli, older, _ = two_runs
    assert _names(cli.ok("status", "--json")) == ["X", "Y"]  # the newest, without --run
    assert _names(cli.ok("status", "--run", older, "--json")) == ["A", "B", "C"]
    assert _names(cli.ok("status", "--json", "--run", older)) == ["A", "B", "C"]
    assert "for the older run" in cli.ok("inbox", "-s", "A", "--run", older, "--json").out
    assert cli.ok("transcript", "A", "--run", older).code == 0
    assert "unknown session 'A'" in one_line_error(cli.fails("transcript", "A"))
    assert cli.ok("show", "--run", older, "--json").json()["run"]["id"] == older
    logs = cli.ok("logs", "--run", older, "--json").out
    logged = [json.loads(line) for line in logs.splitlines()]
    assert logged and {e["run_id"] for e in logged} == {older}
    assert cli.ok("worktrees", "--run", older, "--json").json() == []
    assert cli.ok("clean", "--run", older).out == "nothing to clean\n"
    assert cli.ok("review", "list", "--run", older, "--json").json() == []
    assert cli.ok("context", "add", "x", "-s", "A", "--run", older).code == 0


def test_the_global_form_and_the_run_argument_still_work(two_runs: tuple[Cli, str, str]) -> None:
    cli, older, _ = two_runs
    assert _names(cli.ok("--run", older, "status", "--json")) == ["A", "B", "C"]
    assert cli.ok("--run", older, "transcript", "A").code == 0
    assert cli.ok("show", older, "--json").json()["run"]["id"] == older
    assert cli.ok("logs", older).code == 0
    assert cli.ok("worktrees", older).out == "no worktrees\n"
    assert cli.ok("clean", older).out == "nothing to clean\n"


def test_the_nearest_choice_of_a_run_wins(two_runs: tuple[Cli, str, str]) -> None:
    cli, older, newer = two_runs
    assert _names(cli.ok("--run", newer, "status", "--run", older, "--json")) == ["A", "B", "C"]
    assert _names(cli.ok("status", "--run", older, "--json", CONDUCTOR_RUN=newer)) == [
        "A",
        "B",
        "C",
    ]
    assert _names(cli.ok("--run", older, "status", "--json", CONDUCTOR_RUN=newer)) == [
        "A",
        "B",
        "C",
    ]
    assert cli.ok("show", older, "--run", newer, "--json").json()["run"]["id"] == older


@pytest.mark.parametrize(
    "args",
    [
        ["transcript", "A"],
        ["inbox", "-s", "A"],
        ["status"],
        ["logs"],
        ["show"],
        ["worktrees"],
        ["clean"],
        ["sync", "-s", "A"],
        ["dashboard"],
        ["lock", "show"],
        ["merge-ok", "A"],
    ],
)
def test_an_unknown_run_after_the_command_is_a_one_line_error(team: Cli, args: list[str]) -> None:
    assert "unknown run 'nope'" in one_line_error(team.fails(*args, "--run", "nope"))


# The commands that read no run: the others must all take `--run RUN` after their name.
READ_NO_RUN = {
    "init",  # makes a run
    "run",
    "demo",
    "runs",  # every run
    "worker",  # every run of the database
    "workers",
    "serve",  # every run, in a browser
    "doctor",
    "git-status",
    "git-diff",
    "git-log",
    "completion",
    "model serve",
    "model check",
}


def test_every_command_that_reads_a_run_takes_run_after_its_name() -> None:
    from typer.main import get_command

    from conductor.cli import app

    def walk(group: Any, prefix: str = "") -> list[tuple[str, Any]]:
        found = []
        for name, command in group.commands.items():
            if hasattr(command, "commands"):
                found += walk(command, f"{prefix}{name} ")
            else:
                found.append((f"{prefix}{name}", command))
        return found

    lacking = [
        name
        for name, command in walk(get_command(app))
        if name not in READ_NO_RUN
        and not any("--run" in getattr(p, "opts", ()) for p in command.params)
    ]
    assert lacking == []


# ------------------------------------------------------------------------------ long text

MEGABYTE = ("a line of a long message, ünïcode included\n" * 25_000).encode()


def test_a_megabyte_message_through_stdin(process_cli: Cli, team: Cli) -> None:
    assert len(MEGABYTE) > 1 << 20
    sent = process_cli.ok("message", "B", "-", "--from", "A", input=MEGABYTE)
    assert sent.out == "message #1 sent to B\n"
    [got] = team.ok("inbox", "-s", "B", "--json").json()
    assert got["body"] == MEGABYTE.decode().rstrip("\n")


def test_a_megabyte_reply_and_context_entry_through_stdin(team: Cli) -> None:
    team.ok("message", "B", "question", "--from", "A")
    team.ok("reply", "1", "-", "--from", "B", input=MEGABYTE)
    team.ok("context", "add", "-", "--session", "A", "-c", "interface", input=MEGABYTE)
    [answer] = team.ok("inbox", "-s", "A", "--json").json()
    [entry] = team.ok("context", "show", "--json").json()
    assert answer["body"] == entry["body"] == MEGABYTE.decode().rstrip("\n")


def test_a_message_that_really_is_a_dash_is_sent_through_stdin(team: Cli) -> None:
    team.ok("message", "B", "-", "--from", "A", input=b"-")
    assert team.ok("inbox", "-s", "B", "--json").json()[0]["body"] == "-"


def test_text_from_stdin_loses_only_its_trailing_newlines(team: Cli) -> None:
    team.ok("message", "B", "-", "--from", "A", input=b"  two\n\nparagraphs  \r\n\n")
    assert team.ok("inbox", "-s", "B", "--json").json()[0]["body"] == "  two\n\nparagraphs  "


def test_a_note_and_a_goal_from_stdin(cli: Cli) -> None:
    cli.ok("init", "--sessions", "A:x", "--goal", "-", input=b"a goal\n")
    assert cli.ok("runs", "--json").json()[0]["goal"] == "a goal"
    cli.ok("update", "A", "--note", "-", input=b"waiting on B\n")
    assert cli.ok("status", "--json").json()[0]["note"] == "waiting on B"


def test_text_that_is_not_utf8_is_a_one_line_error(team: Cli) -> None:
    line = one_line_error(team.fails("message", "B", "-", "--from", "A", input=b"caf\xe9"))
    assert "stdin is not UTF-8 text" in line


def test_empty_stdin_is_an_empty_message(team: Cli) -> None:
    assert team.fails("message", "B", "-", "--from", "A", input=b"\n").err.startswith("error: ")


# ------------------------------------------------------------------------------ errors


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["tpyo"], "no such command 'tpyo'"),
        (["transcirpt", "A"], "did you mean 'transcript'"),
        (["message", "B"], "missing argument"),
        (["status", "--bogus"], "no such option: --bogus"),
        (["git-log", "-n", "x"], "invalid value for '-n'"),
        (["dashboard", "--events", "-1"], "invalid value for '--events'"),
        (["--run"], "requires an argument"),
        (["review", "show"], "missing argument"),
    ],
)
def test_a_command_line_that_cannot_be_read_is_one_line(
    process_cli: Cli, args: list[str], says: str
) -> None:
    line = one_line_error(process_cli.fails(*args))
    assert says in line.lower()


@pytest.mark.parametrize(
    ("args", "usage"),
    [
        (["message", "B"], "conductor message [OPTIONS]"),
        (["review", "show"], "conductor review show [OPTIONS]"),
        (["nope"], "conductor [OPTIONS]"),
    ],
)
def test_the_usage_hint_works_when_pasted(
    process_cli: Cli, tmp_path: Path, args: list[str], usage: str
) -> None:
    line = one_line_error(process_cli.fails(*args))
    hint = line.split("; usage: ", 1)[1]
    assert hint.endswith(" --help")
    pasted = subprocess.run(
        hint, shell=True, cwd=tmp_path, env=clean_env(), capture_output=True, text=True
    )
    assert pasted.returncode == 0, pasted.stderr
    assert usage in pasted.stdout.splitlines()[0]


def test_the_hint_before_any_run_works_when_pasted(cli: Cli) -> None:
    line = one_line_error(cli.fails("status"))
    start = line.index("conductor init --sessions")
    hint = line[start : line.index('"', line.index('"', start) + 1) + 1]
    argv = shlex.split(hint)
    cli.ok(*argv[1:])
    assert cli.ok("status").code == 0


# Every command of cli/coordination.py, git_commands.py, watch.py and the run-reading ones of
# runs.py that reads the bus, with good arguments apart from where it runs.
READERS = [
    ["status"],
    ["update", "A", "--note", "x"],
    ["sync", "-s", "A"],
    ["message", "B", "hi", "-f", "A"],
    ["inbox", "-s", "A"],
    ["reply", "1", "x", "-f", "A"],
    ["mark-read", "1", "-s", "A"],
    ["context", "add", "x", "-s", "A"],
    ["context", "show"],
    ["claim", "src", "-s", "A"],
    ["unclaim", "src", "-s", "A"],
    ["claims"],
    ["review", "request", "-f", "A", "--diff", "x"],
    ["review", "list"],
    ["review", "show", "1"],
    ["review", "approve", "1", "-f", "B"],
    ["review", "reject", "1", "-f", "B"],
    ["merge-ok", "A"],
    ["lock", "show"],
    ["lock", "release", "--force"],
    ["dashboard"],
    ["commit", "x", "-s", "A"],
    ["push", "-s", "A"],
    ["pull", "-s", "A"],
    ["runs"],
    ["show"],
    ["logs"],
    ["transcript", "A"],
    ["worktrees"],
    ["clean"],
]


@pytest.mark.parametrize("args", READERS, ids=[" ".join(a) for a in READERS])
def test_every_command_outside_a_repository_is_one_line(tmp_path: Path, args: list[str]) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    assert "not a git repository" in one_line_error(Cli(plain).fails(*args))
    assert list(plain.iterdir()) == []


@pytest.mark.parametrize("args", READERS, ids=[" ".join(a) for a in READERS])
def test_every_command_with_a_database_that_is_not_one_is_one_line(
    cli: Cli, tmp_path: Path, args: list[str]
) -> None:
    junk = tmp_path / "junk.db"
    junk.write_text("not sqlite")
    assert "not a database" in one_line_error(cli.fails("--db", str(junk), *args))
    assert "is a folder" in one_line_error(cli.fails("--db", str(tmp_path), *args))


RUN_READERS = [a for a in READERS if a != ["runs"]]


@pytest.mark.parametrize("args", RUN_READERS, ids=[" ".join(a) for a in RUN_READERS])
def test_every_command_in_an_unknown_run_is_one_line(team: Cli, args: list[str]) -> None:
    assert "unknown run 'nope'" in one_line_error(team.fails("--run", "nope", *args))


SESSION_READERS = [
    ["update", "Z", "--note", "x"],
    ["sync", "-s", "Z"],
    ["message", "Z", "hi", "-f", "A"],
    ["message", "B", "hi", "-f", "Z"],
    ["inbox", "-s", "Z"],
    ["reply", "1", "x", "-f", "Z"],
    ["mark-read", "1", "-s", "Z"],
    ["context", "add", "x", "-s", "Z"],
    ["claim", "src", "-s", "Z"],
    ["claims", "-s", "Z"],
    ["review", "request", "-f", "Z", "--diff", "x"],
    ["merge-ok", "Z"],
    ["commit", "x", "-s", "Z"],
    ["push", "-s", "Z"],
    ["pull", "-s", "Z"],
    ["logs", "-s", "Z"],
    ["transcript", "Z"],
]


@pytest.mark.parametrize("args", SESSION_READERS, ids=[" ".join(a) for a in SESSION_READERS])
def test_every_command_naming_an_unknown_session_is_one_line(team: Cli, args: list[str]) -> None:
    team.ok("message", "A", "a message #1 to reply to", "--from", "B")
    assert "'Z'" in one_line_error(team.fails(*args))


def test_the_commands_load_without_the_sdk() -> None:
    """Every command is registered on every full-app call: a module that imports the SDK
    (about a second) at its top would make each of them that much slower."""
    probe = (
        "import sys\n"
        "from conductor.cli import _register_commands\n"
        "_register_commands()\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'claude_agent_sdk')[:3])\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
