"""Path normalisation: every spelling of a file in the repository becomes one repo-relative path."""

from __future__ import annotations

from pathlib import Path

import pytest

from conductor.errors import InvalidInput, PathOutsideRepository
from conductor.paths import ROOT, covers, normalize


@pytest.fixture
def root(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    return repo


@pytest.mark.parametrize(
    "spelling",
    ["src/a.py", "./src/a.py", "src//a.py", "src/./a.py", "src/x/../a.py", "./src/x/y/../../a.py"],
)
def test_relative_spellings_of_one_file_normalise_to_the_same_path(
    root: Path, spelling: str
) -> None:
    assert normalize(spelling, root) == "src/a.py"


def test_an_absolute_path_inside_the_root_becomes_repo_relative(root: Path) -> None:
    assert normalize(str(root / "src" / "a.py"), root) == "src/a.py"


@pytest.mark.parametrize("spelling", ["src/", "src//", "./src/", "src/core/..", "src"])
def test_trailing_slashes_and_dots_are_dropped_from_directories(root: Path, spelling: str) -> None:
    assert normalize(spelling, root) == "src"


@pytest.mark.parametrize("spelling", [".", "./", "src/..", "{root}", "{root}/"])
def test_the_root_itself_is_dot(root: Path, spelling: str) -> None:
    assert normalize(spelling.format(root=root), root) == ROOT == "."


def test_a_relative_path_is_taken_from_the_working_directory(root: Path) -> None:
    assert normalize("a.py", root, cwd=root / "src") == "src/a.py"
    assert normalize("../docs/x.md", root, cwd=root / "src") == "docs/x.md"


def test_an_absolute_path_ignores_the_working_directory(root: Path) -> None:
    assert normalize(str(root / "a.py"), root, cwd=root / "src") == "a.py"


def test_a_relative_root_is_made_absolute(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(root.parent)
    assert normalize(str(root / "x"), Path(root.name)) == "x"


@pytest.mark.parametrize(
    "spelling", ["../x", "..", "src/../../x", "/etc/passwd", "/", "{root}/../x", "{root}-other/x"]
)
def test_a_path_escaping_the_repository_is_refused(root: Path, spelling: str) -> None:
    with pytest.raises(PathOutsideRepository, match="outside the repository"):
        normalize(spelling.format(root=root), root)


def test_a_working_directory_outside_the_root_cannot_smuggle_a_path_in(root: Path) -> None:
    with pytest.raises(PathOutsideRepository):
        normalize("a.py", root, cwd=root.parent)


def test_a_path_through_a_symlinked_root_is_inside(root: Path, tmp_path: Path) -> None:
    link = tmp_path / "link"
    link.symlink_to(root)
    assert normalize(str(link / "src" / "a.py"), root) == "src/a.py"
    assert normalize(str(root / "src" / "a.py"), link) == "src/a.py"


@pytest.mark.parametrize("spelling", ["", "   "])
def test_an_empty_path_is_invalid(root: Path, spelling: str) -> None:
    with pytest.raises(InvalidInput, match="empty path"):
        normalize(spelling, root)


def test_a_path_with_a_nul_byte_is_invalid(root: Path) -> None:
    with pytest.raises(InvalidInput, match="NUL"):
        normalize("src/a\0.py", root)


@pytest.mark.parametrize(
    ("claimed", "path", "expected"),
    [
        ("src/a.py", "src/a.py", True),
        ("src", "src/a.py", True),
        ("src", "src/core/deep/x.py", True),
        (".", "anything/at/all", True),
        (".", ".", True),
        ("src", "srcx/a.py", False),
        ("src/core", "src/core.py", False),
        ("src/a.py", "src", False),
        ("src/a.py", "src/a.pyc", False),
        ("docs", "src/docs", False),
    ],
)
def test_a_claim_covers_its_path_and_everything_under_it_only(
    claimed: str, path: str, expected: bool
) -> None:
    assert covers(claimed, path) is expected
