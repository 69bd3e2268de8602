"""Shell text read the way the shell reads it, for the push rules (`pushes.py`).

shlex splits words; what it does not know about (comments, line continuations, `$(...)` and
backticks, heredocs) is taken out first by one quote-aware pass, so a command substituted
inside a string is still a command, and `echo "git push"` is still text.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field

_OPERATOR_CHARS = "();<>|&\n"
_WORD_BREAK = " \t\n;&|()<>"
_LONG_OPERATORS = ["&>>", "<<<", ";;&", "&&", "||", "|&", ";;", ";&", "<<", ">>", "<&", ">&", "&>"]
_OPERATORS = sorted([*_LONG_OPERATORS, "<>", ">|", *_OPERATOR_CHARS], key=len, reverse=True)
_SEPARATORS = frozenset({";", ";;", ";;&", ";&", "&&", "||", "|", "|&", "&", "(", ")", "\n"})
_REDIRECTIONS = frozenset(_OPERATORS) - _SEPARATORS

_SUBSTITUTED = "__substitution__"
_HEREDOC = re.compile(r"__heredoc_(\d+)__")


@dataclass
class Prepared:
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
        self.result = Prepared("")
        self.pending: list[tuple[str, bool, bool, int]] = []  # delimiter, -, expands, index

    def run(self) -> Prepared:
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


def tokens(text: str) -> list[str]:
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


def simple_commands(tokens: list[str]) -> list[list[str]]:
    commands: list[list[str]] = [[]]
    for token in tokens:
        if token in _SEPARATORS:
            commands.append([])
        else:
            commands[-1].append(token)
    return [command for command in commands if command]


def command_words(tokens: list[str], heredocs: list[str]) -> tuple[list[str], list[str]]:
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


def split_line(command_line: str) -> list[str]:
    try:
        return shlex.split(command_line)
    except ValueError:
        return command_line.split()


def prepare(text: str) -> Prepared:
    """`text` ready for `tokens`, with the commands and heredoc bodies it holds set aside."""
    return _Prepass(text).run()
