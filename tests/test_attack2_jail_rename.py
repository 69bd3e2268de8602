"""Attack on the first layer alone: conductor's session jail keeps `.git/config`, `hooks/`,
`info/` and `objects/info/` read-only by binding them, but the session's tree (which holds
`.git`) is writable. `rename(".git", ".git-old")` moves the directory, read-only mounts and
all, and a new `.git` of the session's own (with a config naming an fsmonitor program, hooks,
alternates) takes its place. The same for `.git/objects` (a new `objects/info/alternates`).

In a real run Claude Code's own Bash sandbox binds `.git` itself, so the rename fails there
with EBUSY (tests/test_attack2_git_swap.py: defended). The README calls each layer "sound on
its own"; this test is of conductor's jail alone, exactly as `session_jail` builds it.
Green = defended: neither `.git` nor `.git/objects` can be replaced from inside the jail.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from support import make_repo

from conductor.jail import session_jail

SWAP = """
set -u
mv .git .git-old && mkdir .git && cp -r .git-old/HEAD .git-old/refs .git-old/index .git/ \
  && mkdir -p .git/objects/info .git/hooks \
  && printf '[core]\\n\\trepositoryformatversion = 0\\n\\tfsmonitor = /tmp/evil\\n' > .git/config \
  && echo SWAPPED_GIT
mv .git-old .git/old 2>/dev/null
mv .git/objects .git/objects-old 2>/dev/null && mkdir -p .git/objects/info \
  && echo /anywhere > .git/objects/info/alternates && echo SWAPPED_OBJECTS
true
"""


def test_the_session_jail_keeps_its_repository_config(tmp_path: Path) -> None:
    tree = make_repo(tmp_path / "tree")
    (tree / ".git" / "objects" / "info").mkdir(parents=True, exist_ok=True)
    config_dir, tmp = tmp_path / "cfg", tmp_path / "tmp"
    config_dir.mkdir()
    tmp.mkdir()
    jail = session_jail(tree, config_dir, tmp)
    done = subprocess.run(
        jail.argv(["sh", "-c", SWAP]), cwd=tree, capture_output=True, text=True, check=False
    )
    print(done.stdout, done.stderr)
    config = (tree / ".git" / "config").read_text()
    assert "SWAPPED_GIT" not in done.stdout and "fsmonitor" not in config, (
        "HOLE (layer 1): the session jail let .git be renamed and replaced; its config now"
        f" reads {config!r}"
    )
    assert "SWAPPED_OBJECTS" not in done.stdout, (
        "HOLE (layer 1): .git/objects was replaced with alternates of the session's choosing"
    )
