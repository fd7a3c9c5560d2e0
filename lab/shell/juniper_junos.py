"""Juniper Junos dialect: what netmiko's ``juniper_junos`` driver expects.

Operational mode (``admin@R1> ``) and configuration mode (``[edit]`` /
``admin@R1# ``). Configuration changes go to a per-session candidate and reach the
shared LabDevice only on ``commit``. The commit applies the difference between the
candidate and the configuration the session started from, so a change made meanwhile
by another path (SNMP set, fault injection) to a field this session did not touch
survives.

Supported configuration: interface description / disable / ``unit 0 family inet
address`` / ``unit 0 family ethernet-switching vlan members``, and ``vlans NAME
vlan-id N``.
"""

from __future__ import annotations

import copy
import ipaddress
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from lab.model import LabInterface
from lab.shell.base import (
    Arg,
    Match,
    Node,
    Shell,
    Token,
    int_range,
    interface_counters,
    ipv4_prefix,
    kw,
    parse,
    pseudo_mac,
    set_admin_state,
    split_unquoted,
    tokenize,
)

JUNOS_VERSION = "21.4R3.15"


@dataclass
class _IfConfig:
    description: str | None = None
    disable: bool = False
    address: str | None = None
    vlan_member: str | None = None


@dataclass
class _Config:
    interfaces: dict[str, _IfConfig] = field(default_factory=dict)
    vlans: dict[str, int | None] = field(default_factory=dict)

    def statements(self, host: str) -> list[tuple[str, str]]:
        """(hierarchy, statement) pairs: ``set <hierarchy> <statement>`` rebuilds the config."""
        out = [("", f"version {JUNOS_VERSION}"), ("system", f"host-name {host}")]
        for name, c in self.interfaces.items():
            if c.description is not None:
                out.append((f"interfaces {name}", f"description {_quote(c.description)}"))
            if c.disable:
                out.append((f"interfaces {name}", "disable"))
            if c.address:
                out.append((f"interfaces {name} unit 0 family inet", f"address {c.address}"))
            if c.vlan_member:
                out.append((f"interfaces {name} unit 0 family ethernet-switching vlan", f"members {c.vlan_member}"))
        for vname, vid in self.vlans.items():
            out.append((f"vlans {vname}", f"vlan-id {vid}") if vid is not None else ("vlans", vname))
        return out

    def set_lines(self, host: str) -> list[str]:
        return [" ".join(p for p in ("set", ctx, stmt) if p) for ctx, stmt in self.statements(host)]


def _quote(text: str) -> str:
    if text == "" or re.search(r"[\s;{}#\"']", text):
        return '"' + text.replace('"', '\\"') + '"'
    return text


def _ifname(tokens: Sequence[Token], i: int) -> tuple[str, int] | None:
    text = tokens[i].text
    return (text, 1) if re.fullmatch(r"[a-z]+[-\d/.:]*\d|lo0|irb|vlan|ae\d+|fxp0|em\d", text) else None


def _text(tokens: Sequence[Token], i: int) -> tuple[str, int] | None:
    return tokens[i].text, 1


class BadInput(Exception):
    def __init__(self, text: str, message: str = "syntax error.") -> None:
        super().__init__(text)
        self.text = text
        self.message = message


class JunosShell(Shell):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.configuring = False
        self._prompt_len = 0

    # Junos has one candidate per box, shared by every session and kept across
    # `exit configuration-mode` until committed or rolled back; `base` is the active
    # configuration the candidate was copied from.
    @property
    def _candidate(self) -> _Config | None:
        return self.shared.get("candidate")

    @_candidate.setter
    def _candidate(self, value: _Config | None) -> None:
        self.shared["candidate"] = value

    @property
    def _base(self) -> _Config | None:
        return self.shared.get("base")

    @_base.setter
    def _base(self, value: _Config | None) -> None:
        self.shared["base"] = value

    # ------------------------------------------------------------------ terminal

    def greeting(self) -> str:
        login = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(self.clock()))
        return self._crlf(
            f"Last login: {login} from 127.0.0.1\n--- JUNOS {JUNOS_VERSION} Kernel 64-bit  "
            f"JNPR-12.1-20220518.1457_builder_stable_12\n{self.prompt()}"
        )

    def prompt(self) -> str:
        who = f"{self.username}@{self.device.name}"
        return f"\n[edit]\n{who}# " if self.configuring else f"{who}> "

    def interrupt(self, char: str) -> str:
        self._line.clear()
        return "\n" + self.prompt()

    def execute(self, line: str) -> str:
        self._prompt_len = len(self.prompt().rsplit("\n", 1)[-1])
        if self.configuring:
            first, _, rest = line.lstrip().partition(" ")
            if len(first) >= 2 and "run".startswith(first.lower()):
                # `run <operational command>`: pipes belong to the inner command
                offset = len(line) - len(rest)
                return self._execute(_OPERATIONAL, rest, offset, run=True)
            return self._execute(_CONFIG, line, 0)
        output = self._execute(_OPERATIONAL, line, 0)
        if output and not self.closed and self._pending is None:
            output += "\n"  # operational mode leaves a blank line before the next prompt
        return output

    def _execute(self, root: Node, line: str, offset: int, run: bool = False) -> str:
        command, *pipe_parts = split_unquoted(line, "|")
        pipes = [p.strip() for p in pipe_parts]
        tokens = tokenize(command, quotes=True)
        if not tokens:
            return self._caret(offset) + "missing argument.\n" if run else ""
        for tok in tokens:
            tok.col += offset
        match = parse(root, tokens, " " * offset + command, end_col=offset + len(command.rstrip()) + 1)
        if match.error:
            return self._error(match, tokens)
        assert match.handler is not None
        if run and match.handler in (JunosShell.op_configure, JunosShell.op_exit):
            return self._caret(tokens[0].col) + "syntax error.\n"
        saved = self.configuring
        if run:
            self.configuring = False  # operational commands show the active configuration
        try:
            output = match.handler(self, *(match.args or []), *([pipes] if _takes_pipes(match) else []))
        except BadInput as bad:
            col = next((t.col for t in tokens if t.text == bad.text), tokens[-1].col)
            return self._caret(col) + bad.message + "\n"
        finally:
            if run:
                self.configuring = saved
        if pipes and not _takes_pipes(match):
            piped = _apply_pipes(output, pipes)
            if piped is None:
                return self._caret(offset + len(command) + 2) + "syntax error, expecting <command>.\n"
            output = piped
        return output

    def _caret(self, col: int) -> str:
        return " " * (self._prompt_len + col) + "^\n"

    def _error(self, match: Match, tokens: Sequence[Token]) -> str:
        if match.error == "incomplete":
            return self._caret(match.col) + "missing argument.\n"
        if match.error == "ambiguous":
            return f"'{match.word}' is ambiguous.\n"
        # Junos marks the start of the offending word (IOS marks the offending character)
        col = next((t.col for t in tokens if t.col <= match.col <= t.end), match.col)
        word = "unknown command." if tokens and col == tokens[0].col else "syntax error."
        return self._caret(col) + word + "\n"

    # ---------------------------------------------------------------- state

    def _active(self) -> _Config:
        d = self.device
        cfg = _Config()
        names = {vid: (name or f"vlan{vid}") for vid, name in d.vlans.items()}
        for itf in d.interfaces:
            c = _IfConfig(
                description=itf.alias or None,
                disable=not itf.admin_up,
                address=itf.ip_address,
                vlan_member=names.get(itf.access_vlan, str(itf.access_vlan)) if itf.access_vlan is not None else None,
            )
            if c != _IfConfig():
                cfg.interfaces[itf.name] = c
        for vid in sorted(d.vlans):
            cfg.vlans[names[vid]] = vid
        return cfg

    def _cand_if(self, name: str) -> _IfConfig:
        assert self._candidate is not None
        if self.device.interface(name) is None:
            raise BadInput(name)
        real = self.device.interface(name)
        assert real is not None
        return self._candidate.interfaces.setdefault(real.name, _IfConfig())

    # --------------------------------------------------------- operational

    def op_exit(self) -> str:
        self.closed = True
        return ""

    def op_set_cli_width(self, n: int) -> str:
        return f"Screen width set to {n}\n"

    def op_set_cli_length(self, n: int) -> str:
        return f"Screen length set to {n}\n"

    def op_complete_on_space(self, value: str) -> str:
        if value not in ("on", "off"):
            raise BadInput(value)
        return "Disabling complete-on-space\n" if value == "off" else "Enabling complete-on-space\n"

    def op_noop(self, *_: Any) -> str:
        return ""

    def op_configure(self) -> str:
        self.configuring = True
        if self._candidate is not None and self._candidate != self._base:
            return "Entering configuration mode\nThe configuration has been changed but not committed\n"
        self._base = self._active()
        self._candidate = copy.deepcopy(self._base)
        return "Entering configuration mode\n"

    def show_version(self) -> str:
        serial = pseudo_mac(self.device.name).replace(":", "")[2:].upper()
        return (
            f"Hostname: {self.device.name}\n"
            "Model: vmx\n"
            f"Junos: {JUNOS_VERSION}\n"
            f"JUNOS OS Kernel 64-bit  [20220518.1457_builder_stable_12]\n"
            f"JUNOS OS libs [20220518.1457_builder_stable_12]\n"
            f"JUNOS OS runtime [20220518.1457_builder_stable_12]\n"
            f"JUNOS Packet Forwarding Engine Support (MX Common) [{JUNOS_VERSION}]\n"
            f"JUNOS Routing Software Suite [{JUNOS_VERSION}]\n"
            f"Serial Number: VM{serial}\n"
        )

    def show_system_uptime(self) -> str:
        now = self.clock()
        boot = self.device.boot_time
        fmt = "%Y-%m-%d %H:%M:%S UTC"
        up = int(max(0.0, now - boot))
        days, rem = divmod(up, 86400)
        hours, rem = divmod(rem, 3600)
        minutes, seconds = divmod(rem, 60)
        return (
            f"Current time: {time.strftime(fmt, time.gmtime(now))}\n"
            f"System booted: {time.strftime(fmt, time.gmtime(boot))} "
            f"({days}d {hours:02d}:{minutes:02d} ago)\n"
            f"{time.strftime('%I:%M%p', time.gmtime(now)).lower()}  up {days} days, "
            f"{hours}:{minutes:02d}, 1 user, load averages: 0.05, 0.04, 0.01\n"
        )

    def show_interfaces_terse(self, name: str | None = None) -> str:
        lines = [f"{'Interface':<24}{'Admin':<6}{'Link':<5}{'Proto':<9}{'Local':<22}Remote"]
        for itf in self.device.interfaces:
            if name is not None and itf.name != name:
                continue
            admin = "up" if itf.admin_up else "down"
            link = "up" if itf.oper_up else "down"
            lines.append(f"{itf.name:<24}{admin:<6}{link}")
            if itf.ip_address or itf.access_vlan is not None:
                proto = "inet" if itf.ip_address else "eth-switch"
                local = itf.ip_address or ""
                lines.append(f"{itf.name + '.0':<24}{admin:<6}{link:<5}{proto:<9}{local}")
        if name is not None and len(lines) == 1:
            raise BadInput(name, "error: device " + name + " not found")
        return "\n".join(lines) + "\n"

    def show_interfaces(self, name: str | None = None, *, extensive: bool = False) -> str:
        if name is None:
            return "\n".join(self._interface_detail(i, extensive) for i in self.device.interfaces)
        itf = self.device.interface(name)
        if itf is None:
            raise BadInput(name, f"error: device {name} not found")
        return self._interface_detail(itf, extensive)

    def show_interfaces_extensive(self, name: str | None = None) -> str:
        return self.show_interfaces(name, extensive=True)

    def _interface_detail(self, itf: LabInterface, extensive: bool) -> str:
        now = self.clock()
        in_oct, out_oct, in_err, out_err = interface_counters(itf, now)
        rate_in, rate_out = (int(itf.in_rate_bps), int(itf.out_rate_bps)) if itf.oper_up else (0, 0)
        flapped = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(itf.last_change or self.device.boot_time))
        lines = [
            f"Physical interface: {itf.name}, {'Enabled' if itf.admin_up else 'Administratively down'}, "
            f"Physical link is {'Up' if itf.link_up else 'Down'}",
            f"  Interface index: {itf.if_index + 147}, SNMP ifIndex: {itf.if_index}",
        ]
        if itf.alias:
            lines.append(f"  Description: {itf.alias}")
        lines += [
            f"  Link-level type: Ethernet, MTU: 1514, LAN-PHY mode, Speed: {_speed(itf.speed_mbps)}, "
            "BPDU Error: None, Loop Detect PDU Error: None, Ethernet-Switching Error: None, "
            "MAC-REWRITE Error: None, Loopback: Disabled, Source filtering: Disabled, "
            "Flow control: Enabled",
            f"  Device flags   : Present {'Running' if itf.oper_up else 'Down'}",
            "  Interface flags: SNMP-Traps Internal: 0x4000" if itf.admin_up else "  Interface flags: Down",
            "  Link flags     : None",
            f"  Current address: {itf.mac}, Hardware address: {itf.mac}",
            f"  Last flapped   : {flapped}",
            f"  Input rate     : {rate_in} bps ({rate_in // 4000} pps)",
            f"  Output rate    : {rate_out} bps ({rate_out // 4000} pps)",
        ]
        if extensive:
            lines += [
                "  Traffic statistics:",
                f"   Input  bytes  :        {in_oct:>20}",
                f"   Output bytes  :        {out_oct:>20}",
                f"   Input  packets:        {in_oct // 500:>20}",
                f"   Output packets:        {out_oct // 500:>20}",
                "  Input errors:",
                f"    Errors: {in_err}, Drops: 0, Framing errors: 0, Runts: 0",
                "  Output errors:",
                f"    Carrier transitions: 1, Errors: {out_err}, Drops: 0",
            ]
        lines += [
            "  Active alarms  : None" if itf.link_up else "  Active alarms  : LINK",
            "  Active defects : None" if itf.link_up else "  Active defects : LINK",
        ]
        if itf.ip_address or itf.access_vlan is not None:
            lines += [
                "",
                f"  Logical interface {itf.name}.0 (Index {itf.if_index + 330}) (SNMP ifIndex {itf.if_index + 500})",
                f"    Flags: {'Up' if itf.oper_up else 'Down'} SNMP-Traps 0x4004000 Encapsulation: ENET2",
                f"    Input packets : {in_oct // 500}",
                f"    Output packets: {out_oct // 500}",
            ]
            if itf.ip_address:
                local, plen = itf.ip_address.split("/")
                network = ipaddress.ip_interface(itf.ip_address).network
                lines += [
                    "    Protocol inet, MTU: 1500",
                    "      Flags: Sendbcast-pkt-to-re",
                    "      Addresses, Flags: Is-Preferred Is-Primary",
                    f"        Destination: {network}, Local: {local}, Broadcast: {network.broadcast_address}",
                ]
            else:
                lines += ["    Protocol eth-switch, MTU: 1514", "      Flags: Is-Primary"]
        return "\n".join(lines) + "\n"

    def show_lldp_neighbors(self) -> str:
        lines = [f"{'Local Interface':<19}{'Parent Interface':<20}{'Chassis Id':<20}{'Port info':<19}System Name"]
        for itf in self.device.interfaces:
            if itf.neighbor is None or not itf.oper_up:
                continue
            remote, remote_if = itf.neighbor
            lines.append(f"{itf.name:<19}{'-':<20}{pseudo_mac(remote):<20}{remote_if:<19}{remote}")
        return "\n".join(lines) + "\n"

    def show_configuration(self, *args: Any) -> str:
        *path, pipes = args
        cfg = self._candidate if self.configuring and self._candidate is not None else self._active()
        return self._render(cfg, list(path), pipes, header=not self.configuring)

    def _render(self, cfg: _Config, path: list[str], pipes: list[str], header: bool) -> str:
        for p in pipes:
            if not re.fullmatch(r"(display set|no-more|match .+|except .+|compare)", p):
                raise BadInput(p.split()[0] if p else "|")
        if "compare" in pipes:
            if not self.configuring:
                raise BadInput("compare")
            return self._compare()
        if "display set" in pipes:
            lines = cfg.set_lines(self.device.name)
            if path:
                prefix = "set " + " ".join(path) + " "
                lines = [ln for ln in lines if ln.startswith(prefix)]
            text = "\n".join(lines) + ("\n" if lines else "")
        else:
            text = self._curly(cfg, path)
            if header and not path:
                at, by = self.shared.get("last_commit", (self.device.boot_time, "root"))
                when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(at))
                text = f"## Last commit: {when} by {by}\n" + text
        rest = [p for p in pipes if p not in ("display set", "no-more")]
        return _apply_pipes(text, rest) or ""

    def _curly(self, cfg: _Config, path: list[str]) -> str:
        blocks: list[tuple[str, list[str]]] = []
        if not path:
            blocks.append(("", [f"version {JUNOS_VERSION};"]))
            blocks.append(("system", [f"host-name {self.device.name};"]))
        elif path[0] == "system":
            blocks.append(("system", [f"host-name {self.device.name};"]))
        if not path or path[0] == "interfaces":
            body: list[str] = []
            for name, c in cfg.interfaces.items():
                if len(path) > 1 and path[1] != name:
                    continue
                inner: list[str] = []
                if c.description is not None:
                    inner.append(f"description {_quote(c.description)};")
                if c.disable:
                    inner.append("disable;")
                if c.address or c.vlan_member:
                    fam = []
                    if c.address:
                        fam += ["family inet {", f"    address {c.address};", "}"]
                    if c.vlan_member:
                        fam += [
                            "family ethernet-switching {",
                            "    vlan {",
                            f"        members {c.vlan_member};",
                            "    }",
                            "}",
                        ]
                    inner += ["unit 0 {", *("    " + f for f in fam), "}"]
                if len(path) > 1:
                    body += inner
                else:
                    body += [f"{name} {{", *("    " + x for x in inner), "}"]
            blocks.append(("interfaces" if len(path) < 2 else "", body))
        if not path or path[0] == "vlans":
            body = []
            for vname, vid in cfg.vlans.items():
                if len(path) > 1 and path[1] != vname:
                    continue
                inner = [f"vlan-id {vid};"] if vid is not None else []
                body += inner if len(path) > 1 else [f"{vname} {{", *("    " + x for x in inner), "}"]
            blocks.append(("vlans" if len(path) < 2 else "", body))
        out: list[str] = []
        for title, body in blocks:
            if title and path:
                out += body  # `show configuration interfaces`: contents, no outer braces
            elif title:
                if body:
                    out += [f"{title} {{", *("    " + x for x in body), "}"]
            else:
                out += body
        return "\n".join(out) + ("\n" if out else "")

    def _compare(self) -> str:
        assert self._candidate is not None
        active = self._active().statements(self.device.name)
        cand = self._candidate.statements(self.device.name)
        groups: dict[str, list[str]] = {}
        for sign, mine, other in (("-", active, cand), ("+", cand, active)):
            for ctx, stmt in mine:
                if (ctx, stmt) not in other:
                    groups.setdefault(ctx, []).append(f"{sign}   {stmt};")
        out = []
        for ctx, changes in groups.items():
            out.append(f"[edit {ctx}]" if ctx else "[edit]")
            out += changes
        return "\n".join(out) + ("\n" if out else "")

    # ----------------------------------------------------------- configuration

    def cfg_set_description(self, name: str, text: str) -> str:
        self._cand_if(name).description = text
        return ""

    def cfg_set_disable(self, name: str) -> str:
        self._cand_if(name).disable = True
        return ""

    def cfg_set_address(self, name: str, unit: int, address: str) -> str:
        if unit != 0:
            raise BadInput(str(unit), "error: only unit 0 is supported on lab devices")
        self._cand_if(name).address = address
        return ""

    def cfg_set_vlan_member(self, name: str, unit: int, member: str) -> str:
        if unit != 0:
            raise BadInput(str(unit), "error: only unit 0 is supported on lab devices")
        self._cand_if(name).vlan_member = member
        return ""

    def cfg_set_vlan(self, vname: str, vid: int | None = None) -> str:
        assert self._candidate is not None
        if vid is None:
            self._candidate.vlans.setdefault(vname, None)
        else:
            self._candidate.vlans[vname] = vid
        return ""

    def cfg_delete_interface(self, name: str) -> str:
        c = self._cand_if(name)
        c.description, c.disable, c.address, c.vlan_member = None, False, None, None
        return ""

    def cfg_delete_description(self, name: str) -> str:
        c = self._cand_if(name)
        if c.description is None:
            return "warning: statement not found\n"
        c.description = None
        return ""

    def cfg_delete_disable(self, name: str) -> str:
        c = self._cand_if(name)
        if not c.disable:
            return "warning: statement not found\n"
        c.disable = False
        return ""

    def cfg_delete_unit(self, name: str, unit: int, *_: Any) -> str:
        c = self._cand_if(name)
        if unit != 0 or (c.address is None and c.vlan_member is None):
            return "warning: statement not found\n"
        c.address, c.vlan_member = None, None
        return ""

    def cfg_delete_address(self, name: str, unit: int, address: str | None = None) -> str:
        c = self._cand_if(name)
        if unit != 0 or c.address is None or (address is not None and address != c.address):
            return "warning: statement not found\n"
        c.address = None
        return ""

    def cfg_delete_vlan(self, vname: str) -> str:
        assert self._candidate is not None
        if self._candidate.vlans.pop(vname, "missing") == "missing":
            return "warning: statement not found\n"
        return ""

    def cfg_show(self, *args: Any) -> str:
        *path, pipes = args
        assert self._candidate is not None
        return self._render(self._candidate, list(path), pipes, header=False)

    def cfg_commit(self, check: bool = False) -> str:
        assert self._candidate is not None and self._base is not None
        errors = self._validate(self._candidate)
        if errors:
            return "".join(errors) + "error: configuration check-out failed\n"
        if check:
            return "configuration check succeeds\n"
        self._apply(self._base, self._candidate)
        self.shared["last_commit"] = (self.clock(), self.username)
        self._base = self._active()
        self._candidate = copy.deepcopy(self._base)
        return "commit complete\n"

    def cfg_commit_check(self) -> str:
        return self.cfg_commit(check=True)

    def cfg_commit_and_quit(self) -> str:
        out = self.cfg_commit()
        if out == "commit complete\n":
            self._leave()
            return out + "Exiting configuration mode\n\n"
        return out

    def cfg_rollback(self, n: int = 0) -> str:
        if n != 0:
            return f"error: Requested rollback {n} not available on lab devices\n"
        self._base = self._active()
        self._candidate = copy.deepcopy(self._base)
        return "load complete\n"

    def cfg_exit(self) -> str:
        assert self._candidate is not None and self._base is not None
        if self._candidate == self._base:
            self._leave()
            return "Exiting configuration mode\n\n"

        def answer(reply: str) -> str:
            if reply.strip().lower() in ("", "yes", "y"):
                self._leave()
                return "Exiting configuration mode\n\n"
            return ""

        self.ask(
            "The configuration has been changed but not committed\nExit with uncommitted changes? [yes,no] (yes) ",
            answer,
        )
        return ""

    def _leave(self) -> None:
        self.configuring = False

    def _validate(self, cfg: _Config) -> list[str]:
        errors = []
        for name, c in cfg.interfaces.items():
            if c.vlan_member and not c.vlan_member.isdigit() and c.vlan_member not in cfg.vlans:
                errors.append(
                    f"[edit interfaces {name} unit 0 family ethernet-switching vlan]\n"
                    f"  'members {c.vlan_member}'\n"
                    f"    Referenced vlan {c.vlan_member} is not defined\n"
                )
        for vname, vid in cfg.vlans.items():
            if vid is None:
                errors.append(f"[edit vlans {vname}]\n  'vlan-id'\n    missing mandatory statement\n")
        return errors

    def _apply(self, base: _Config, cand: _Config) -> None:
        d = self.device
        if cand.vlans != base.vlans:
            vlans = {vid: name for name, vid in cand.vlans.items() if vid is not None}
            d.vlans.clear()
            d.vlans.update(vlans)
        empty = _IfConfig()
        for itf in d.interfaces:
            old = base.interfaces.get(itf.name, empty)
            new = cand.interfaces.get(itf.name, empty)
            if old == new:
                continue
            touched = False
            if old.description != new.description:
                itf.alias = new.description or ""
                touched = True
            if old.disable != new.disable:
                touched |= set_admin_state(itf, not new.disable, self.clock())
            if old.address != new.address:
                itf.ip_address = new.address
                touched = True
            if old.vlan_member != new.vlan_member:
                itf.access_vlan = _vlan_id(new.vlan_member, cand)
            if touched:
                self.changed(itf)


def _speed(mbps: int) -> str:
    return f"{mbps // 1000}Gbps" if mbps >= 1000 and mbps % 1000 == 0 else f"{mbps}mbps"


def _vlan_id(member: str | None, cfg: _Config) -> int | None:
    if member is None:
        return None
    if member.isdigit():
        return int(member)
    return cfg.vlans.get(member)


_PIPE_HANDLERS: set[Any] = set()  # handlers that interpret `| ...` themselves


def _takes_pipes(match: Match) -> bool:
    return match.handler in _PIPE_HANDLERS


def _apply_pipes(text: str, pipes: list[str]) -> str | None:
    lines = text.split("\n")
    for p in pipes:
        verb, _, arg = p.partition(" ")
        if verb == "no-more":
            continue
        if verb in ("match", "except") and arg:
            try:
                rx = re.compile(arg.strip('"'))
            except re.error:
                return None
            keep = verb == "match"
            lines = [ln for ln in lines if bool(rx.search(ln)) == keep]
        elif verb == "count":
            lines = [f"Count: {sum(1 for ln in lines if ln)} lines"]
        else:
            return None
    out = "\n".join(lines)
    return out if out.endswith("\n") or not out else out + "\n"


# ---------------------------------------------------------------- command trees

J = JunosShell
_IF = _ifname
_UNIT = int_range(0, 16385)
_VLAN_ID = int_range(1, 4094)


def _show_configuration(handler: Any) -> Node:
    """``show configuration [interfaces [IF] | vlans [NAME] | system] [| pipes]``."""

    def at(*path: str) -> Any:
        def show(shell: JunosShell, *args: Any) -> str:
            *names, pipes = args
            return handler(shell, *path, *names, pipes)

        _PIPE_HANDLERS.add(show)
        return show

    return kw(
        at(),
        interfaces=kw(at("interfaces"), arg=Arg("interface", _IF, kw(at("interfaces")))),
        vlans=kw(at("vlans"), arg=Arg("vlan", _text, kw(at("vlans")))),
        system=kw(at("system")),
    )


def _show_op() -> Node:
    return kw(
        version=kw(J.show_version),
        interfaces=kw(
            J.show_interfaces,
            terse=kw(J.show_interfaces_terse, arg=Arg("interface", _IF, kw(J.show_interfaces_terse))),
            extensive=kw(J.show_interfaces_extensive),
            arg=Arg(
                "interface",
                _IF,
                kw(
                    J.show_interfaces,
                    terse=kw(J.show_interfaces_terse),
                    extensive=kw(J.show_interfaces_extensive),
                ),
            ),
        ),
        lldp=kw(neighbors=kw(J.show_lldp_neighbors)),
        configuration=_show_configuration(J.show_configuration),
        system=kw(uptime=kw(J.show_system_uptime)),
    )


_OPERATIONAL = kw(
    show=_show_op(),
    configure=kw(J.op_configure, private=kw(J.op_configure), exclusive=kw(J.op_configure)),
    exit=kw(J.op_exit),
    quit=kw(J.op_exit),
    set=kw(
        cli=kw(
            screen_width=kw(arg=Arg("columns", int_range(0, 1024), kw(J.op_set_cli_width))),
            screen_length=kw(arg=Arg("lines", int_range(0, 100000), kw(J.op_set_cli_length))),
            complete_on_space=kw(arg=Arg("on|off", _text, kw(J.op_complete_on_space))),
            terminal=kw(arg=Arg("type", _text, kw(J.op_noop))),
            timestamp=kw(J.op_noop),
        ),
    ),
)

_INET_ADDR = kw(arg=Arg("address", ipv4_prefix, kw(J.cfg_set_address)))
_SET_IF = kw(
    description=kw(arg=Arg("text", _text, kw(J.cfg_set_description))),
    disable=kw(J.cfg_set_disable),
    unit=kw(
        arg=Arg(
            "unit",
            _UNIT,
            kw(
                family=kw(
                    inet=kw(address=_INET_ADDR),
                    ethernet_switching=kw(vlan=kw(members=kw(arg=Arg("vlan", _text, kw(J.cfg_set_vlan_member))))),
                )
            ),
        )
    ),
)
_DELETE_IF = kw(
    J.cfg_delete_interface,
    description=kw(J.cfg_delete_description),
    disable=kw(J.cfg_delete_disable),
    unit=kw(
        arg=Arg(
            "unit",
            _UNIT,
            kw(
                J.cfg_delete_unit,
                family=kw(
                    inet=kw(
                        J.cfg_delete_unit,
                        address=kw(J.cfg_delete_address, arg=Arg("address", ipv4_prefix, kw(J.cfg_delete_address))),
                    ),
                    ethernet_switching=kw(J.cfg_delete_unit),
                ),
            ),
        )
    ),
)

_CONFIG = kw(
    set=kw(
        interfaces=kw(arg=Arg("interface", _IF, _SET_IF)),
        vlans=kw(arg=Arg("vlan", _text, kw(J.cfg_set_vlan, vlan_id=kw(arg=Arg("id", _VLAN_ID, kw(J.cfg_set_vlan)))))),
    ),
    delete=kw(
        interfaces=kw(arg=Arg("interface", _IF, _DELETE_IF)),
        vlans=kw(arg=Arg("vlan", _text, kw(J.cfg_delete_vlan))),
    ),
    commit=kw(J.cfg_commit, check=kw(J.cfg_commit_check), and_quit=kw(J.cfg_commit_and_quit)),
    rollback=kw(J.cfg_rollback, arg=Arg("n", int_range(0, 49), kw(J.cfg_rollback))),
    show=_show_configuration(J.cfg_show),
    exit=kw(J.cfg_exit, configuration_mode=kw(J.cfg_exit)),
    quit=kw(J.cfg_exit),
    top=kw(J.op_noop),
)
