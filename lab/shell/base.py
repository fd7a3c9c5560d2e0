"""Terminal plumbing shared by the lab's vendor CLIs.

A shell is a pure state machine over text: bytes typed by the client go in through
:meth:`Shell.feed`, the text to send back (echo, output, prompt) comes out. It does no
I/O, so the SSH server (``lab.ssh``) stays a thin adapter and one object per
session is all a CLI costs.

Commands are matched against a small keyword tree with IOS/Junos-style unique-prefix
abbreviation (``sh ip int br``); a failed match reports the column of the offending
character so each dialect can draw its caret line.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from lab.model import Clock, LabDevice, LabInterface

log = logging.getLogger(__name__)

OnChange = Callable[[LabDevice, str], None]

# ANSI escape sequences (arrow keys and the like): a lab CLI has no history or cursor
# movement, so they are dropped rather than inserted into the command line.
_ANSI = re.compile(r"\x1b(?:\[[0-9;?]*[A-Za-z~]|O[A-Za-z]|.)")


# --------------------------------------------------------------------------- matching


@dataclass(slots=True)
class Token:
    text: str
    col: int  # offset of the token's first character in the command line
    end: int


def tokenize(line: str, *, quotes: bool = False) -> list[Token]:
    """Split on whitespace; with ``quotes`` a "double quoted" run is one token."""
    tokens: list[Token] = []
    i, n = 0, len(line)
    while i < n:
        if line[i].isspace():
            i += 1
            continue
        start = i
        if quotes and line[i] == '"':
            close = line.find('"', i + 1)
            end = n if close < 0 else close + 1
            tokens.append(Token(line[i + 1 : close if close >= 0 else n], start, end))
            i = end
            continue
        while i < n and not line[i].isspace():
            i += 1
        tokens.append(Token(line[start:i], start, i))
    return tokens


def split_unquoted(line: str, sep: str) -> list[str]:
    """Split on ``sep`` outside "double quotes" (a Junos description may contain a pipe)."""
    parts, start, quoted = [], 0, False
    for i, ch in enumerate(line):
        if ch == '"':
            quoted = not quoted
        elif ch == sep and not quoted:
            parts.append(line[start:i])
            start = i + 1
    parts.append(line[start:])
    return parts


ArgParser = Callable[[Sequence[Token], int], "tuple[Any, int] | None"]


class Arg:
    """A positional argument in the command tree.

    ``parse(tokens, i)`` returns ``(value, tokens_consumed)`` or None when the token does
    not fit; ``rest`` takes the raw remainder of the line (IOS ``description`` text).
    """

    __slots__ = ("name", "parse", "rest", "then")

    def __init__(self, name: str, parse: ArgParser | None, then: Node, *, rest: bool = False) -> None:
        self.name = name
        self.parse = parse
        self.then = then
        self.rest = rest


class Node:
    __slots__ = ("keywords", "arg", "handler")

    def __init__(
        self,
        handler: Callable[..., str] | None = None,
        *,
        arg: Arg | None = None,
        kw: dict[str, Node] | None = None,
    ) -> None:
        self.handler = handler
        self.arg = arg
        self.keywords = kw or {}


@dataclass(slots=True)
class Match:
    handler: Callable[..., str] | None = None
    args: list[Any] | None = None
    error: str | None = None  # "invalid" | "incomplete" | "ambiguous"
    col: int = 0
    word: str = ""  # the ambiguous or offending word


def parse(root: Node, tokens: Sequence[Token], raw: str, end_col: int | None = None) -> Match:
    node = root
    args: list[Any] = []
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        low = tok.text.lower()
        child = node.keywords.get(low)
        if child is None and low:
            cands = [k for k in node.keywords if k.startswith(low)]
            if len(cands) == 1:
                child = node.keywords[cands[0]]
            elif len(cands) > 1 and node.arg is None:
                return Match(error="ambiguous", col=tok.col, word=tok.text)
        if child is not None:
            node = child
            i += 1
            continue
        arg = node.arg
        if arg is not None:
            if arg.rest:
                args.append(raw[tok.col :].rstrip())
                node = arg.then
                i = len(tokens)
                break
            assert arg.parse is not None
            got = arg.parse(tokens, i)
            if got is not None:
                args.append(got[0])
                i += got[1]
                node = arg.then
                continue
            if not node.keywords:
                return Match(error="invalid", col=tok.col, word=tok.text)
        # IOS marks the first character no keyword can continue with
        best = 0
        for k in node.keywords:
            p = 0
            while p < len(low) and p < len(k) and low[p] == k[p]:
                p += 1
            best = max(best, p)
        return Match(error="invalid", col=tok.col + best, word=tok.text)
    if node.handler is None:
        return Match(error="incomplete", col=len(raw) if end_col is None else end_col)
    return Match(handler=node.handler, args=args)


def kw(handler: Callable[..., str] | None = None, *, arg: Arg | None = None, **children: Node) -> Node:
    """Tree-building shorthand; keyword names use ``_`` for ``-`` (``running_config``)."""
    return Node(handler, arg=arg, kw={k.replace("_", "-"): v for k, v in children.items()})


# ------------------------------------------------------------------- argument parsers


def word(tokens: Sequence[Token], i: int) -> tuple[str, int] | None:
    return tokens[i].text, 1


def int_range(lo: int, hi: int) -> ArgParser:
    def parse_int(tokens: Sequence[Token], i: int) -> tuple[int, int] | None:
        text = tokens[i].text
        if text.isdigit() and lo <= int(text) <= hi:
            return int(text), 1
        return None

    return parse_int


_IPV4 = re.compile(r"(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)")


def ipv4(tokens: Sequence[Token], i: int) -> tuple[str, int] | None:
    text = tokens[i].text
    return (text, 1) if _IPV4.fullmatch(text) else None


def ipv4_prefix(tokens: Sequence[Token], i: int) -> tuple[str, int] | None:
    addr, _, plen = tokens[i].text.partition("/")
    if _IPV4.fullmatch(addr) and plen.isdigit() and int(plen) <= 32:
        return f"{addr}/{int(plen)}", 1
    return None


def mask_to_prefix(mask: str) -> int | None:
    bits = 0
    for octet in mask.split("."):
        bits = (bits << 8) | int(octet)
    text = f"{bits:032b}"
    if "01" in text:
        return None
    return text.count("1")


def prefix_to_mask(plen: int) -> str:
    bits = (0xFFFFFFFF << (32 - plen)) & 0xFFFFFFFF if plen else 0
    return ".".join(str((bits >> s) & 0xFF) for s in (24, 16, 8, 0))


# ---------------------------------------------------------------------- state helpers


def interface_counters(itf: LabInterface, now: float) -> tuple[int, int, int, int]:
    """(in octets, out octets, in errors, out errors): the same numbers SNMP serves."""
    return itf.in_octets(now), itf.out_octets(now), itf.in_errors(now), itf.out_errors(now)


def set_admin_state(itf: LabInterface, up: bool, now: float) -> bool:
    """Change admin state the way the model asks: fold the counters first. True if changed."""
    if itf.admin_up == up:
        return False
    was_up = itf.oper_up
    itf.rebase(now, was_up)
    itf.admin_up = up
    if itf.oper_up != was_up:
        itf.last_change = now
    return True


def pseudo_mac(seed: str) -> str:
    """A stable locally administered MAC for things the model has no MAC for (LLDP chassis)."""
    digest = hashlib.blake2b(seed.encode(), digest_size=5).digest()
    return ":".join(f"{b:02x}" for b in (0x02, *digest))


def uptime_parts(seconds: float) -> tuple[int, int, int, int, int]:
    """(years, weeks, days, hours, minutes) the way IOS counts uptime."""
    minutes = int(max(0.0, seconds)) // 60
    years, minutes = divmod(minutes, 365 * 24 * 60)
    weeks, minutes = divmod(minutes, 7 * 24 * 60)
    days, minutes = divmod(minutes, 24 * 60)
    hours, minutes = divmod(minutes, 60)
    return years, weeks, days, hours, minutes


# ------------------------------------------------------------------------ the terminal


class Shell:
    """Line discipline and session state common to every dialect.

    Subclasses implement :meth:`prompt`, :meth:`execute` (one command line -> output
    text) and optionally :meth:`greeting` and :meth:`interrupt`. Text is produced with
    bare ``\\n``; :meth:`feed` converts to CRLF as a pty (and IOS) does.
    """

    def __init__(
        self,
        device: LabDevice,
        *,
        username: str,
        password: str,
        on_change: OnChange | None = None,
        clock: Clock = time.time,
        shared: dict[str, Any] | None = None,
    ) -> None:
        self.device = device
        # per-device state that outlives a session (the Junos candidate configuration)
        self.shared: dict[str, Any] = {} if shared is None else shared
        self.username = username
        self._password = password
        self._on_change = on_change
        self.clock = clock
        self.closed = False
        self._line: list[str] = []
        self._last_cr = False
        # a question asked mid-command (enable password, confirmation): the next line
        # answers it instead of being parsed as a command
        self._pending: Callable[[str], str] | None = None
        self._pending_prompt = ""
        self._echo = True

    # -- to override
    def prompt(self) -> str:
        raise NotImplementedError

    def execute(self, line: str) -> str:
        raise NotImplementedError

    def greeting(self) -> str:
        return self._crlf(self.prompt())

    def interrupt(self, char: str) -> str:
        """Ctrl-C / Ctrl-Z: default drops the typed line."""
        self._line.clear()
        return "^C\n" + self.prompt()

    def run_exec(self, command: str) -> str:
        """One command from an SSH ``exec`` request (``ssh host 'show version'``)."""
        return self._crlf(self._safe_execute(command.strip()))

    # -- helpers for subclasses
    def ask(self, question: str, answer: Callable[[str], str], *, echo: bool = True) -> None:
        self._pending = answer
        self._pending_prompt = question
        self._echo = echo

    def changed(self, itf: LabInterface) -> None:
        if self._on_change is None:
            return
        try:
            self._on_change(self.device, itf.name)
        except Exception:  # a failing trap sender must not take the CLI session down
            log.exception("on_change callback failed for %s %s", self.device.name, itf.name)

    def check_password(self, text: str) -> bool:
        return hmac.compare_digest(text.encode(), self._password.encode())

    # -- the line discipline
    def feed(self, data: str) -> str:
        out: list[str] = []
        data = _ANSI.sub("", data)
        for ch in data:
            if self.closed:
                break
            if ch == "\n" and self._last_cr:
                self._last_cr = False
                continue
            self._last_cr = ch == "\r"
            if ch in "\r\n":
                line = "".join(self._line)
                self._line.clear()
                out.append("\n")
                out.append(self._dispatch(line))
            elif ch in "\x7f\x08":
                if self._line:
                    self._line.pop()
                    if self._echo:
                        out.append("\b \b")
            elif ch in "\x03\x1a":
                if self._pending is not None:
                    self._pending = None
                    self._echo = True
                out.append(self.interrupt(ch))
            elif ch == "\x15":  # Ctrl-U: kill line
                if self._echo:
                    out.append("\b \b" * len(self._line))
                self._line.clear()
            elif ch >= " " or ch == "\t":
                self._line.append(" " if ch == "\t" else ch)
                if self._echo:
                    out.append(ch)
        return self._crlf("".join(out))

    def _dispatch(self, line: str) -> str:
        if self._pending is not None:
            answer, self._pending = self._pending, None
            self._echo = True
            try:
                body = answer(line)
            except Exception:
                log.exception("lab CLI %s failed answering a prompt", self.device.name)
                body = "% Internal error\n"
        else:
            body = self._safe_execute(line)
        if self.closed:
            return body
        if self._pending is not None:
            return body + self._pending_prompt
        return body + self.prompt()

    def _safe_execute(self, line: str) -> str:
        try:
            return self.execute(line)
        except Exception:
            # never drop the session over a simulator bug; say so, like a box would
            log.exception("lab CLI %s failed on %r", self.device.name, line)
            return "% Internal error\n"

    @staticmethod
    def _crlf(text: str) -> str:
        return text.replace("\r\n", "\n").replace("\n", "\r\n")
