"""conductor.toml: a commented default, strict parsing, flags over the file."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from support import Cli, one_line_error

from conductor.config import DEFAULT_TOML, Config, load_config, parse_config
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
        ("max_paralel = 2", "unknown setting 'max_paralel'"),
        ("max_parallel = 'two'", "max_parallel should be int"),
        ("max_usd_per_run = true", "max_usd_per_run should be float"),
        ("checks = 'pytest'", "checks should be a list of strings"),
        ("review = 'vibes'", "review must be one of agent, peer, human, auto"),
        ("max_parallel = 0", "at least 1"),
    ],
)
def test_a_wrong_setting_is_named(toml: str, complaint: str) -> None:
    with pytest.raises(InvalidInput, match=complaint):
        parse_config(tomllib.loads(toml))


def test_a_config_that_is_not_toml_is_a_one_line_error(tmp_path: Path) -> None:
    (tmp_path / "conductor.toml").write_text("max_parallel = [\n")
    with pytest.raises(InvalidInput, match="is not valid TOML") as caught:
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
