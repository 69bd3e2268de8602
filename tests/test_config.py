"""conductor.toml: a commented default, strict parsing, flags over the file."""

from __future__ import annotations

import json
import tomllib
from dataclasses import asdict, fields
from pathlib import Path

import pytest
from support import Cli, one_line_error

from conductor.config import DEFAULT_TOML, SETTINGS, Config, load_config, parse_config
from conductor.errors import InvalidInput


def test_init_writes_a_commented_default_that_loads(cli: Cli, repo: Path) -> None:
    assert "conductor.toml" in cli.ok("init").out
    text = (repo / "conductor.toml").read_text()
    assert text == DEFAULT_TOML and text.count("#") > 10
    config = load_config(repo)
    assert (config.checks, config.review, config.max_parallel) == (("pytest -q",), "agent", 3)


def test_init_never_overwrites_a_config(cli: Cli, repo: Path) -> None:
    (repo / "conductor.toml").write_text("max_parallel = 9\n")
    assert "exists already" in one_line_error(cli.fails("init"))
    assert load_config(repo).max_parallel == 9


def test_no_file_means_the_defaults(tmp_path: Path) -> None:
    assert load_config(tmp_path) == Config()


@pytest.mark.parametrize(
    ("toml", "complaint"),
    [
        (
            "max_paralel = 2",
            "conductor.toml: max_paralel: unknown setting; did you mean max_parallel?",
        ),
        ("max_parallel = 'two'", "max_parallel: expected a whole number of sessions from 1 to 100"),
        ("max_usd_per_run = true", "max_usd_per_run: expected an amount in US dollars more than 0"),
        ("checks = 'pytest'", "checks: expected a list of command lines, got 'pytest'"),
        ("review = 'vibes'", "review: expected one of agent, peer, human, auto, got 'vibes'"),
        (
            "max_parallel = 0",
            "max_parallel: expected a whole number of sessions from 1 to 100, got 0",
        ),
        (
            "stall_seconds = -5",
            "stall_seconds: expected a number of seconds from 1 to 86400, got -5",
        ),
    ],
)
def test_a_wrong_setting_is_named(toml: str, complaint: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_config(tomllib.loads(toml))
    assert complaint in str(caught.value)


def test_every_setting_is_read_and_checked() -> None:
    assert set(SETTINGS) == {f.name for f in fields(Config)}


def test_a_runs_stored_config_reads_back_as_it_was() -> None:
    """A resumed run reads its config from the store: what asdict() wrote, lists and all."""
    config = Config(checks=("pytest -q",), env={"PORT": "8001"}, stall_seconds=1.5)
    assert parse_config(json.loads(json.dumps(asdict(config)))) == config


@pytest.mark.parametrize(
    ("toml", "value"),
    [
        ("stall_seconds = 1", 1.0),
        ("stall_seconds = 86400", 86400.0),
        ("backoff_seconds = 0.2", 0.2),
        ("retries = 0", 0),
        ("max_parallel = 100", 100),
        ("env = {PORT = 8001}", {"PORT": "8001"}),
        ("allowed_domains = ['*.github.com', 'pypi.org']", ("*.github.com", "pypi.org")),
    ],
)
def test_values_at_the_edges_of_their_range_are_taken(toml: str, value: object) -> None:
    key = toml.split(" = ")[0]
    assert getattr(parse_config(tomllib.loads(toml)), key) == value


def test_a_config_that_is_not_toml_is_a_one_line_error(tmp_path: Path) -> None:
    (tmp_path / "conductor.toml").write_text("max_parallel = [\n")
    with pytest.raises(InvalidInput, match=r"conductor\.toml is not valid TOML") as caught:
        load_config(tmp_path)
    assert "\n" not in str(caught.value)


def test_flags_override_the_file_only_when_given() -> None:
    config = parse_config({"max_parallel": 2, "model": "sonnet"})
    assert config.override(max_parallel=5, model=None) == parse_config(
        {"max_parallel": 5, "model": "sonnet"}
    )


def test_the_setup_command_is_split_into_arguments() -> None:
    assert parse_config({"setup": "npm ci --prefer-offline"}).setup_argv == [
        "npm",
        "ci",
        "--prefer-offline",
    ]
