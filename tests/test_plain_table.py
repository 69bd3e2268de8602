"""The status table drawn without rich is the table rich draws, byte for byte, whenever it
draws one at all; anything rich would lay out differently is left to rich."""

from __future__ import annotations

import io
import random
import string

import pytest
from rich.console import Console
from rich.table import Table

from conductor.plain_table import draw, pipe_width


def rich_draws(title: str, columns: list[str], rows: list[list[str]], width: int) -> str:
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*row)
    out = io.StringIO()
    Console(file=out, width=width, markup=False, emoji=False, highlight=False).print(table)
    return out.getvalue()


def test_a_plain_table_is_drawn_as_rich_draws_it() -> None:
    columns = ["ID", "Workstream", "Status", "Unread", "Note"]
    rows = [["A", "api", "running", "2", "writing the auth routes"], ["B", "ui", "done", "", ""]]
    drawn = draw("Sessions", columns, rows, 80)
    assert drawn is not None
    assert drawn == rich_draws("Sessions", columns, rows, 80)


def test_a_table_with_no_rows_is_drawn_as_rich_draws_it() -> None:
    columns = ["ID", "Note"]
    assert draw("Sessions", columns, [], 80) == rich_draws("Sessions", columns, [], 80)


@pytest.mark.parametrize(
    "cell",
    ["naïve", "tab\there", "two  spaces", " lead", "trail ", "bell\a", "wide 字", "[bold]x[/]"],
)
def test_a_cell_rich_might_lay_out_differently_is_left_to_rich(cell: str) -> None:
    drawn = draw("Sessions", ["ID", "Note"], [["A", cell]], 80)
    if drawn is not None:  # markup is plain text to a console made with markup=False
        assert drawn == rich_draws("Sessions", ["ID", "Note"], [["A", cell]], 80)
    else:
        assert cell != "[bold]x[/]"


def test_a_table_wider_than_the_width_is_left_to_rich() -> None:
    assert draw("Sessions", ["ID", "Note"], [["A", "word " * 20 + "end"]], 80) is None


def test_random_tables_are_drawn_as_rich_draws_them_or_not_at_all() -> None:
    chance = random.Random(14)
    alphabet = string.ascii_letters + string.digits + string.punctuation + "    é\t"
    drawn_some = 0
    for _ in range(400):
        width = chance.choice([40, 60, 80, 120])
        count = chance.randint(1, 6)
        columns = ["".join(chance.choices(alphabet, k=chance.randint(1, 10))) for _ in range(count)]
        rows = [
            ["".join(chance.choices(alphabet, k=chance.randint(0, 18))) for _ in range(count)]
            for _ in range(chance.randint(0, 4))
        ]
        title = chance.choice(["Sessions", "S", "A rather long table title here"])
        drawn = draw(title, columns, rows, width)
        if drawn is not None:
            drawn_some += 1
            assert drawn == rich_draws(title, columns, rows, width), (title, columns, rows, width)
    assert drawn_some > 20


def test_a_pipe_is_drawn_at_columns_or_80(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TTY_COMPATIBLE", raising=False)
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    monkeypatch.setenv("COLUMNS", "132")
    assert pipe_width() == 132  # pytest captures stdout: not a terminal


def test_a_forced_terminal_is_left_to_rich(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FORCE_COLOR", "1")
    assert pipe_width() is None
