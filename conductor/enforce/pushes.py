"""Whether a Bash command would push: the push rules over the shell's reading (`shell.py`)."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

from conductor.enforce.shell import command_words, prepare, simple_commands, split_line, tokens

PUSH_DENIAL = (
    "git push is not allowed in a conductor session: commit on your branch, then call "
    "mcp__bus__request_review (or done); conductor merges approved work through its merge gate."
)

# The fallback when the command is not shell we can tokenise (an unbalanced quote): `git push`
# in any spelling, quoted or not; it over-refuses text, which is acceptable for broken input.
_GIT_PUSH = re.compile(
    r"""(?:^|[\s;&|(`'"$/\\])git(?:\.exe)?"""
    r"""(?:\s+(?:-[Cc]\s*(?:'[^']*'|"[^"]*"|\S+)|--?[\w-]+(?:=(?:'[^']*'|"[^"]*"|\S+))?))*"""
    r"""\s+['"]?push(?=$|[\s'";&|)`])"""
)

_MAX_DEPTH = 8  # nested `sh -c` / `$(...)` / eval levels read before falling back to the regex
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
    prepared = prepare(command)
    if any(_scan(inner, depth + 1) for inner in prepared.nested):
        return True
    try:
        read = tokens(prepared.text)
    except ValueError:  # an unbalanced quote or a trailing backslash
        return bool(_GIT_PUSH.search(command))
    return any(
        _command_pushes(*command_words(simple, prepared.heredocs), depth)
        for simple in simple_commands(read)
    )


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
                return split_line(args[i + 1]) + args[i + 2 :]
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
