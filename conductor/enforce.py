"""What a session may not do, decided before the tool runs (the `PreToolUse` hooks' policy).

Pure decisions over a tool call; `session.py` wires them to the SDK's hooks and the bus.
Under `bypassPermissions` the SDK's `can_use_tool` is never called, so hooks are the gate.

This is the fast, friendly first refusal, with a reason the model can act on; the OS sandbox
is the real boundary. What it does judge, it judges soundly: a write is placed where it really
lands (through symlinks), and a shell command is read as the shell reads it (quotes, `&&`,
`sh -c`, `$(...)`), so `echo "git push"` is text and `FOO=1 git push` is a push.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from conductor import paths
from conductor.errors import InvalidInput, PathOutsideRepository

WRITE_TOOLS = {
    "Write": "file_path",
    "Edit": "file_path",
    "MultiEdit": "file_path",
    "NotebookEdit": "notebook_path",
}

# The built-in tools a worker session is offered: those whose effects the gates judge (file
# writes and Bash, checked by the write hook) and ones that only read or keep its task list.
# An allowlist, so a tool a newer CLI adds is not offered until it is judged: this CLI's
# `Monitor` runs a command with network domains of the model's choosing, `Workflow` runs a
# script in the CLI's own process, `CronCreate`/`ScheduleWakeup` prompt it later,
# `EnterWorktree` makes worktrees, `Agent` starts subagents with tools of their own.
WORKER_TOOLS = (
    *WRITE_TOOLS,
    "Bash",
    "Read",
    "Glob",
    "Grep",
    "TaskCreate",
    "TaskGet",
    "TaskList",
    "TaskUpdate",
    "TaskStop",
)

PUSH_DENIAL = (
    "git push is not allowed in a conductor session: commit on your branch, then call "
    "mcp__bus__request_review (or done); conductor merges approved work through its merge gate."
)


def written_path(tool_name: str, tool_input: Mapping[str, Any]) -> str | None:
    """The path a file-writing tool call writes, or None for other tools."""
    key = WRITE_TOOLS.get(tool_name)
    if key is None:
        return None
    value = tool_input.get(key)
    return str(value) if value else None


# ----------------------------------------------------------------------------- writes

# Files that configure Claude Code itself (settings, hooks, MCP servers), at any depth.
_CLAUDE_SETTINGS = frozenset({"settings.json", "settings.local.json"})


def write_target(path: str, worktree: Path) -> str:
    """The repository-relative real path of a write, or raise with a reason the model reads.

    The path is resolved through symlinks first (`d/x` with `d -> .` is `x`; `out/x` with
    `out -> /elsewhere` is outside), because the claim check that follows must see the file
    that is really written. Relative paths are taken from the worktree; the worktree itself
    may sit behind a symlink (`/tmp`), so both sides are compared resolved.
    """
    _check_spelling(path)
    joined = os.path.join(os.path.abspath(worktree), os.path.expanduser(path))
    # Not normpath first: `link/..` is the link target's parent, as the kernel resolves it.
    real = Path(os.path.realpath(joined))
    lexical = Path(os.path.normpath(joined))
    try:
        rel = paths.normalize(str(real), Path(os.path.realpath(worktree)))
    except PathOutsideRepository:
        landing = "" if real == lexical else f" (it resolves to {real})"
        raise PathOutsideRepository(
            f"{path} is outside your worktree {worktree}{landing}: write only inside it"
        ) from None
    reason = protected_reason(rel)
    if reason is not None:
        raise InvalidInput(reason)
    return rel


def protected_reason(rel_path: str) -> str | None:
    """Why a repository-relative path may not be written by a session, or None if it may.

    Git's own data (any `.git` component, a submodule's too) changes history behind the merge
    gate's back; Claude Code's settings and `.mcp.json` would let a session rewrite its own
    hooks and tools. Compared case-insensitively: on macOS `.GIT` is the same directory.
    """
    parts = [part.casefold() for part in PurePosixPath(rel_path).parts]
    if ".git" in parts:
        return f"{rel_path} is git's own data: commit with git instead of writing it"
    name = parts[-1] if parts else ""
    if name == ".mcp.json" or (name in _CLAUDE_SETTINGS and parts[-2:-1] == [".claude"]):
        return (
            f"{rel_path} configures Claude Code itself: a session may not change its own "
            "settings, hooks or tools"
        )
    return None


def _check_spelling(path: str) -> None:
    """Reject what no filesystem call could take, before resolving it."""
    if not path or not path.strip():
        raise InvalidInput(f"bad path {path!r}: empty path")
    if "\0" in path:
        raise InvalidInput(f"bad path {path!r}: a path cannot contain a NUL byte")


# ----------------------------------------------------------------------------- pushes

# The fallback when the command is not shell we can tokenise (an unbalanced quote): `git push`
# in any spelling, quoted or not; it over-refuses text, which is acceptable for broken input.
_GIT_PUSH = re.compile(
    r"""(?:^|[\s;&|(`'"$/\\])git(?:\.exe)?"""
    r"""(?:\s+(?:-[Cc]\s*(?:'[^']*'|"[^"]*"|\S+)|--?[\w-]+(?:=(?:'[^']*'|"[^"]*"|\S+))?))*"""
    r"""\s+['"]?push(?=$|[\s'";&|)`])"""
)

_MAX_DEPTH = 8  # nested `sh -c` / `$(...)` / eval levels read before falling back to the regex

_OPERATOR_CHARS = "();<>|&\n"
_WORD_BREAK = " \t\n;&|()<>"
_LONG_OPERATORS = ["&>>", "<<<", ";;&", "&&", "||", "|&", ";;", ";&", "<<", ">>", "<&", ">&", "&>"]
_OPERATORS = sorted([*_LONG_OPERATORS, "<>", ">|", *_OPERATOR_CHARS], key=len, reverse=True)
_SEPARATORS = frozenset({";", ";;", ";;&", ";&", "&&", "||", "|", "|&", "&", "(", ")", "\n"})
_REDIRECTIONS = frozenset(_OPERATORS) - _SEPARATORS

_SUBSTITUTED = "__substitution__"
_HEREDOC = re.compile(r"__heredoc_(\d+)__")
_ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\+?=")
_RESERVED = frozenset({"!", "{", "if", "then", "else", "elif", "do", "while", "until"})
_SHELLS = frozenset({"sh", "bash", "zsh", "dash", "ksh", "mksh", "ash", "fish"})

# Global options whose value may be the next argument (`--git-dir x` as well as `--git-dir=x`).
_GIT_VALUE_OPTIONS = frozenset(
    {
        "-C",
        "-c",
        "--git-dir",
        "--work-tree",
        "--namespace",
        "--super-prefix",
        "--config-env",
        "--attr-source",
    }
)
_GIT_PUSH_VERBS = frozenset({"push", "send-pack", "http-push"})
_GH_PUSHES = frozenset({("pr", "create"), ("pr", "merge"), ("repo", "sync")})


def pushes(command: str) -> bool:
    """Whether a Bash command would push, read the way the shell reads it.

    Judged: git's push verbs after any global options, `-c alias.x=...push`, `gh` commands that
    push for you, and the same inside `sh -c`, `eval`, `$(...)`, backticks and a heredoc fed to
    a shell, behind `env`/`sudo`/`timeout`-style wrappers. Not judged: a git alias from a config
    file (`git p`), a program found through a variable: the sandbox stops those.
    """
    return _scan(command, 0)


def _scan(command: str, depth: int) -> bool:
    if depth > _MAX_DEPTH:
        return bool(_GIT_PUSH.search(command))
    prepared = _Prepass(command).run()
    if any(_scan(inner, depth + 1) for inner in prepared.nested):
        return True
    try:
        tokens = _tokens(prepared.text)
    except ValueError:  # an unbalanced quote or a trailing backslash
        return bool(_GIT_PUSH.search(command))
    return any(
        _command_pushes(*_words(simple, prepared.heredocs), depth)
        for simple in _simple_commands(tokens)
    )


@dataclass
class _Prepared:
    """Shell text ready for shlex, and the command texts it holds that shlex cannot see."""

    text: str
    nested: list[str] = field(default_factory=list)  # `$(...)`, backticks: commands that run
    heredocs: list[str] = field(default_factory=list)  # bodies, by `__heredoc_N__` placeholder


class _Prepass:
    """One quote-aware pass before tokenising, for what shlex does not know about.

    It takes out comments (shlex would swallow the newline after one, gluing two commands),
    line continuations, command substitutions (kept as commands to scan, replaced by a plain
    word) and heredoc bodies (text, unless a shell reads them; replaced by a placeholder).
    """

    def __init__(self, text: str) -> None:
        self.text = text
        self.i = 0
        self.out: list[str] = []
        self.result = _Prepared("")
        self.pending: list[tuple[str, bool, bool, int]] = []  # delimiter, -, expands, index

    def run(self) -> _Prepared:
        while self.i < len(self.text):
            self._step()
        self.result.text = "".join(self.out)
        return self.result

    def _step(self) -> None:
        text, i = self.text, self.i
        char = text[i]
        if text.startswith("\\\n", i):
            self.i += 2
        elif char == "\\":
            self._copy(2)
        elif char == "'":
            self._copy(_single_quote_end(text, i) - i)
        elif char == '"':
            self._double_quoted()
        elif char == "`" or text.startswith("$(", i):
            self._substitution()
        elif char == "#" and (i == 0 or text[i - 1] in _WORD_BREAK):
            end = text.find("\n", i)
            self.i = len(text) if end < 0 else end
        elif text.startswith("<<<", i):
            self._copy(3)
        elif text.startswith("<<", i):
            self._heredoc()
        else:
            self._copy(1)
            if char == "\n":
                self._heredoc_bodies()

    def _copy(self, count: int) -> None:
        self.out.append(self.text[self.i : self.i + count])
        self.i += count

    def _double_quoted(self) -> None:
        self._copy(1)
        while self.i < len(self.text):
            text, i = self.text, self.i
            if text.startswith("\\\n", i):
                self.i += 2
            elif text[i] == "\\":
                self._copy(2)
            elif text[i] == "`" or text.startswith("$(", i):
                self._substitution()
            else:
                self._copy(1)
                if text[i] == '"':
                    return

    def _substitution(self) -> None:
        inner, self.i = _substitution_at(self.text, self.i)
        self.result.nested.append(inner)
        self.out.append(_SUBSTITUTED)

    def _heredoc(self) -> None:
        start = self.i + 2
        strip_tabs = self.text.startswith("-", start)
        word_start = start + strip_tabs
        while word_start < len(self.text) and self.text[word_start] in " \t":
            word_start += 1
        delimiter, quoted, end = _heredoc_word(self.text, word_start)
        if not delimiter:
            self._copy(2)
            return
        index = len(self.result.heredocs)
        self.result.heredocs.append("")
        self.pending.append((delimiter, strip_tabs, not quoted, index))
        self.out.append(f"<< __heredoc_{index}__ ")
        self.i = end

    def _heredoc_bodies(self) -> None:
        for delimiter, strip_tabs, expands, index in self.pending:
            body, self.i = _heredoc_body(self.text, self.i, delimiter, strip_tabs)
            self.result.heredocs[index] = body
            if expands:
                self.result.nested.extend(_substitutions(body))
        self.pending.clear()


def _single_quote_end(text: str, start: int) -> int:
    """The index after the quote closing the one at `start` (the end, if it is unclosed)."""
    end = text.find("'", start + 1)
    return len(text) if end < 0 else end + 1


def _double_quote_end(text: str, start: int) -> int:
    j = start + 1
    while j < len(text):
        if text[j] == "\\":
            j += 2
        elif text[j] == '"':
            return j + 1
        else:
            j += 1
    return len(text)


def _substitution_at(text: str, start: int) -> tuple[str, int]:
    """The command inside the `$(...)` or backticks at `start`, and the index after them."""
    if text[start] == "`":
        j = start + 1
        while j < len(text) and text[j] != "`":
            j += 2 if text[j] == "\\" else 1
        return text[start + 1 : j].replace("\\`", "`"), j + 1
    end = _paren_end(text, start + 2)
    return text[start + 2 : end], end + 1


def _paren_end(text: str, start: int) -> int:
    """The index of the `)` balancing an open one just before `start`, skipping quotes."""
    depth, j = 1, start
    while j < len(text):
        char = text[j]
        if char == "'":
            j = _single_quote_end(text, j)
            continue
        if char == '"':
            j = _double_quote_end(text, j)
            continue
        if char == "\\":
            j += 2
            continue
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth == 0:
            return j
        j += 1
    return len(text)


def _substitutions(body: str) -> list[str]:
    """The commands substituted in an unquoted heredoc's body (quotes there are literal)."""
    found: list[str] = []
    j = 0
    while j < len(body):
        if body[j] == "\\":
            j += 2
        elif body[j] == "`" or body.startswith("$(", j):
            inner, j = _substitution_at(body, j)
            found.append(inner)
        else:
            j += 1
    return found


def _heredoc_word(text: str, start: int) -> tuple[str, bool, int]:
    """A heredoc's delimiter, whether any of it was quoted (no expansion), and its end."""
    word: list[str] = []
    quoted, j = False, start
    while j < len(text) and text[j] not in _WORD_BREAK:
        char = text[j]
        if char in "'\"":
            end = text.find(char, j + 1)
            end = len(text) if end < 0 else end
            word.append(text[j + 1 : end])
            quoted, j = True, end + 1
        elif char == "\\":
            word.append(text[j + 1 : j + 2])
            quoted, j = True, j + 2
        else:
            word.append(char)
            j += 1
    return "".join(word), quoted, min(j, len(text))


def _heredoc_body(text: str, start: int, delimiter: str, strip_tabs: bool) -> tuple[str, int]:
    """The body lines from `start` up to the delimiter line, and the index after that line."""
    lines: list[str] = []
    j = start
    while j < len(text):
        newline = text.find("\n", j)
        stop = len(text) if newline < 0 else newline
        line = text[j:stop].lstrip("\t") if strip_tabs else text[j:stop]
        j = stop + 1
        if line == delimiter:
            break
        lines.append(line + "\n")
    return "".join(lines), min(j, len(text))


def _tokens(text: str) -> list[str]:
    """Shell words and operators; newlines are operators (they end a command) too."""
    lexer = shlex.shlex(text, posix=True, punctuation_chars=_OPERATOR_CHARS)
    lexer.whitespace = " \t\r"
    lexer.whitespace_split = True
    lexer.commenters = ""
    tokens: list[str] = []
    for token in lexer:
        if token and all(char in _OPERATOR_CHARS for char in token):
            tokens.extend(_split_operators(token))
        else:
            tokens.append(token)
    return tokens


def _split_operators(run: str) -> list[str]:
    """Split a run of operator characters (`;(`, `\\n>`) into operators, longest first."""
    found: list[str] = []
    while run:
        operator = next(op for op in _OPERATORS if run.startswith(op))
        found.append(operator)
        run = run[len(operator) :]
    return found


def _simple_commands(tokens: list[str]) -> list[list[str]]:
    commands: list[list[str]] = [[]]
    for token in tokens:
        if token in _SEPARATORS:
            commands.append([])
        else:
            commands[-1].append(token)
    return [command for command in commands if command]


def _words(tokens: list[str], heredocs: list[str]) -> tuple[list[str], list[str]]:
    """A simple command's words without its redirections, and the texts it gets on stdin."""
    words: list[str] = []
    stdin: list[str] = []
    i = 0
    while i < len(tokens):
        token, following = tokens[i], tokens[i + 1] if i + 1 < len(tokens) else ""
        if token in _REDIRECTIONS:
            heredoc = _HEREDOC.fullmatch(following)
            if token == "<<<":
                stdin.append(following)
            elif token == "<<" and heredoc and int(heredoc[1]) < len(heredocs):
                stdin.append(heredocs[int(heredoc[1])])
            i += 2
        elif token.isdigit() and following in _REDIRECTIONS:
            i += 1  # the `2` of `2>/dev/null`
        else:
            words.append(token)
            i += 1
    return words, stdin


def _command_pushes(words: list[str], stdin: list[str], depth: int) -> bool:
    words = _unwrap(words)
    if not words:
        return False
    program, args = _program_name(words[0]), words[1:]
    if program == "git":
        return _git_pushes(args, depth)
    if program == "gh":
        return bool(args[:1] == ["api"] or tuple(args[:2]) in _GH_PUSHES)
    if program in _SHELLS:
        return _shell_pushes(args, stdin, depth)
    if program == "eval":
        return _scan(" ".join(args), depth + 1)
    return False


def _program_name(word: str) -> str:
    """`/usr/bin/git`, `C:\\Git\\bin\\git.exe` and `git` are all git."""
    return re.split(r"[\\/]", word)[-1].lower().removesuffix(".exe")


@dataclass(frozen=True)
class _Wrapper:
    """A program that runs the command in its arguments: `env`, `sudo`, `timeout 5`, ..."""

    value_options: frozenset[str] = frozenset()  # options whose value is the next argument
    operands: int = 0  # arguments before the command (timeout's duration)
    assignments: bool = False  # env: NAME=value arguments before the command
    split_options: frozenset[str] = frozenset()  # env -S: the value is itself a command line

    def command(self, args: list[str]) -> list[str]:
        i = 0
        while i < len(args):
            arg = args[i]
            if arg == "--":
                i += 1
                break
            if arg in self.split_options and i + 1 < len(args):
                return _split(args[i + 1]) + args[i + 2 :]
            if self.assignments and _ASSIGNMENT.match(arg):
                i += 1
            elif arg in self.value_options:
                i += 2
            elif arg.startswith("-") and len(arg) > 1:
                i += 1
            else:
                break
        return args[i + self.operands :]


_WRAPPERS = {
    "env": _Wrapper(
        frozenset({"-u", "--unset", "-C", "--chdir"}),
        assignments=True,
        split_options=frozenset({"-S", "--split-string"}),
    ),
    "command": _Wrapper(),
    "builtin": _Wrapper(),
    "exec": _Wrapper(frozenset({"-a"})),
    "nohup": _Wrapper(),
    "setsid": _Wrapper(),
    "time": _Wrapper(frozenset({"-f", "-o", "--format", "--output"})),
    "nice": _Wrapper(frozenset({"-n", "--adjustment"})),
    "ionice": _Wrapper(frozenset({"-c", "-n", "-p", "--class", "--classdata"})),
    "stdbuf": _Wrapper(frozenset({"-i", "-o", "-e", "--input", "--output", "--error"})),
    "timeout": _Wrapper(frozenset({"-s", "-k", "--signal", "--kill-after"}), operands=1),
    "sudo": _Wrapper(
        frozenset({"-u", "-g", "-C", "-D", "-h", "-p", "-r", "-t", "-U", "-T", "--user"})
        | {"--group", "--chdir", "--host", "--prompt", "--other-user"}
    ),
    "doas": _Wrapper(frozenset({"-u", "-C"})),
    "xargs": _Wrapper(
        frozenset({"-I", "-L", "-n", "-P", "-s", "-d", "-E", "-a", "--max-args", "--max-procs"})
        | {"--delimiter", "--arg-file", "--max-lines"}
    ),
}


def _unwrap(words: list[str]) -> list[str]:
    """The command that really runs: without `VAR=value` prefixes, reserved words, wrappers."""
    while words:
        if _ASSIGNMENT.match(words[0]) or words[0] in _RESERVED:
            words = words[1:]
            continue
        wrapper = _WRAPPERS.get(_program_name(words[0]))
        if wrapper is None:
            return words
        words = wrapper.command(words[1:])
    return words


def _split(command_line: str) -> list[str]:
    try:
        return shlex.split(command_line)
    except ValueError:
        return command_line.split()


def _git_pushes(args: list[str], depth: int) -> bool:
    """git's global options, then the verb; an unknown verb may be a config alias: not judged."""
    i = 0
    while i < len(args) and args[i].startswith("-"):
        option = args[i]
        if option == "--exec-path":
            return False  # without `=dir`, git prints its exec path and exits
        takes_value = option in _GIT_VALUE_OPTIONS
        if option == "-c" and i + 1 < len(args) and _alias_pushes(args[i + 1]):
            return True
        i += 2 if takes_value else 1
    if i >= len(args):
        return False
    verb, rest = args[i], args[i + 1 :]
    if verb == "submodule":
        return _foreach_pushes(rest, depth)
    return verb in _GIT_PUSH_VERBS


def _alias_pushes(setting: str) -> bool:
    """`-c alias.p=push` (or `=!sh ...`, which runs anything) defines a pushing alias."""
    key, _, value = setting.partition("=")
    if not key.lower().startswith("alias."):
        return False
    return value.startswith("!") or "push" in value or "send-pack" in value


def _foreach_pushes(args: list[str], depth: int) -> bool:
    """`git submodule foreach CMD` runs CMD in every submodule: one argument through a shell,
    several as a program and its arguments (git's own rule)."""
    positionals = [i for i, arg in enumerate(args) if not arg.startswith("-")]
    if not positionals or args[positionals[0]] != "foreach":
        return False
    command = args[positionals[0] + 1 :]
    while command and command[0].startswith("-"):
        command = command[1:]
    return _scan(command[0] if len(command) == 1 else shlex.join(command), depth + 1)


def _shell_pushes(args: list[str], stdin: list[str], depth: int) -> bool:
    """`sh -c STRING` (any cluster with c: `-lc`, `-ec`) runs STRING; `bash <<EOF` its stdin."""
    i, command_string, reads_stdin = 0, False, False
    while i < len(args):
        arg = args[i]
        if arg in ("--", "-"):
            i += 1
            break
        if arg in ("--rcfile", "--init-file"):
            i += 2
        elif arg.startswith("--"):
            i += 1
        elif arg[:1] in ("-", "+") and len(arg) > 1:
            command_string = command_string or (arg[0] == "-" and "c" in arg[1:])
            reads_stdin = reads_stdin or "s" in arg[1:]
            i += 1 + sum(char in "oO" for char in arg[1:])  # `-o pipefail`, `-euo pipefail`
        else:
            break
    operands = args[i:]
    if command_string:
        return bool(operands) and _scan(operands[0], depth + 1)
    if operands and not reads_stdin:
        return False  # a script file: its text is not in the command
    return any(_scan(script, depth + 1) for script in stdin)
