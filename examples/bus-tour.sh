#!/usr/bin/env bash
# A hands-on tour of conductor's coordination bus, in a throwaway git repository.
# Every command here is one a session (or a person) can run by hand between tasks.
set -euo pipefail
command -v conductor >/dev/null || { echo "conductor is not on PATH: run make demo" >&2; exit 2; }

repo=$(mktemp -d "${TMPDIR:-/tmp}/conductor-tour.XXXXXX")
remote=$(mktemp -d "${TMPDIR:-/tmp}/conductor-tour-remote.XXXXXX")
export GIT_AUTHOR_NAME=tour GIT_AUTHOR_EMAIL=tour@example.invalid
export GIT_COMMITTER_NAME=tour GIT_COMMITTER_EMAIL=tour@example.invalid
git init -q --bare -b main "$remote"
git -C "$repo" init -q -b main
git -C "$repo" remote add origin "$remote"
git -C "$repo" commit -q --allow-empty -m "start"
git -C "$repo" push -q -u origin main
cd "$repo"

step() { printf '\n\033[1m$ conductor %s\033[0m\n' "$*"; conductor "$@"; }

echo "A tour of conductor's bus in $repo"
step init --sessions "A:frontend B:backend" --goal "Build a REST API with auth"
step context add "JWT for auth, not session cookies" --session B --category decision
step message A "Auth types are exported from api/types.py" --from B
step sync --session A
step claim api/ --session B
echo; echo "# A may not claim a file inside B's directory claim:"
step claim api/types.py --session A || true
mkdir -p api && echo "TOKEN_TTL = 3600" > api/types.py
step commit "add auth types" --session B --all
step review request --from B --to A
step merge-ok B || true
step review approve 1 --from A --comment "types look right"
step merge-ok B
step push --session B
step update B --status done --note "auth shipped"
step dashboard
echo; echo "The tour's repository is $repo; its state is in $repo/.conductor/ (ignored by git)."
