"""Cisco IOS dialect: what netmiko's ``cisco_ios`` driver and ntc-templates expect.

Modes: user EXEC (``R1>``), privileged EXEC (``R1#``, via ``enable``), global config
and the interface / vlan sub-modes. Config commands change the shared LabDevice at
once, as IOS does; ``write memory`` snapshots the rendered running-config into
``device.saved_config``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
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
    ipv4,
    kw,
    mask_to_prefix,
    parse,
    prefix_to_mask,
    pseudo_mac,
    set_admin_state,
    tokenize,
    uptime_parts,
)

IOS_VERSION = "15.9(3)M4"

_ABBREV = {
    "gigabitethernet": "Gi",
    "tengigabitethernet": "Te",
    "fastethernet": "Fa",
    "ethernet": "Et",
    "loopback": "Lo",
    "vlan": "Vl",
    "port-channel": "Po",
    "fortygigabitethernet": "Fo",
    "hundredgige": "Hu",
    "twentyfivegige": "Twe",
}
_IFNAME = re.compile(r"([A-Za-z][A-Za-z-]*?)\s*(\d[\d/.:]*)")


def short_ifname(name: str) -> str:
    m = _IFNAME.fullmatch(name)
    if not m:
        return name
    return _ABBREV.get(m.group(1).lower(), m.group(1)) + m.group(2)


def _interface_arg_parser(tokens: Sequence[Token], i: int) -> tuple[str, int] | None:
    # "Gi0/1" or "GigabitEthernet 0/1": the type and the number may be two tokens
    text = tokens[i].text
    if text.replace("-", "").isalpha() and i + 1 < len(tokens) and tokens[i + 1].text[:1].isdigit():
        return text + tokens[i + 1].text, 2
    if _IFNAME.fullmatch(text):
        return text, 1
    return None


class BadInput(Exception):
    """A handler rejects an argument the grammar accepted (an interface that does not exist)."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text


class CiscoIosShell(Shell):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.mode = "user"  # user | enable | config | config-if | config-vlan
        self._itf: LabInterface | None = None
        self._vlan: int | None = None

    # ------------------------------------------------------------------ terminal

    def greeting(self) -> str:
        return self._crlf("\n" + self.prompt())

    def prompt(self) -> str:
        host = self.device.name
        return {
            "user": f"{host}>",
            "enable": f"{host}#",
            "config": f"{host}(config)#",
            "config-if": f"{host}(config-if)#",
            "config-vlan": f"{host}(config-vlan)#",
        }[self.mode]

    def interrupt(self, char: str) -> str:
        self._line.clear()
        if char == "\x1a" and self.mode.startswith("config"):
            self._to_exec()
            return "^Z\n" + self.prompt()
        return "\n" + self.prompt() if char == "\x03" else self.prompt()

    def run_exec(self, command: str) -> str:
        self.mode = "enable"  # an exec channel runs at the user's privilege (15 in the lab)
        return super().run_exec(command)

    def execute(self, line: str) -> str:
        # output modifiers exist in EXEC only: in config mode "|" is text (a description)
        command, pipe = _split_pipe(line) if self.mode in ("user", "enable") else (line, [])
        tokens = tokenize(command)
        if not tokens:
            return ""
        match = parse(self._tree(), tokens, command)
        if match.error and self.mode in ("config-if", "config-vlan"):
            # IOS falls back to the global config parser and leaves the sub-mode
            fallback = parse(_CONFIG, tokens, command)
            if not fallback.error:
                self.mode, self._itf, self._vlan = "config", None, None
                match = fallback
            elif fallback.error == "invalid" and match.error == "invalid" and fallback.col > match.col:
                match = fallback
        if match.error:
            return self._error(match, line)
        assert match.handler is not None
        try:
            output = match.handler(self, *(match.args or []))
        except BadInput as bad:
            col = next((t.col for t in tokens if bad.text.lower().endswith(t.text.lower())), tokens[-1].col)
            return self._error(Match(error="invalid", col=col), line)
        return _apply_pipe(output, pipe) if pipe else output

    def _tree(self) -> Node:
        return {
            "user": _USER,
            "enable": _ENABLE,
            "config": _CONFIG,
            "config-if": _CONFIG_IF,
            "config-vlan": _CONFIG_VLAN,
        }[self.mode]

    def _error(self, match: Match, line: str) -> str:
        if match.error == "incomplete":
            return "% Incomplete command.\n\n"
        if match.error == "ambiguous":
            return f'% Ambiguous command:  "{line.strip()}"\n'
        caret = " " * (len(self.prompt()) + match.col) + "^"
        return f"{caret}\n% Invalid input detected at '^' marker.\n\n"

    def _to_exec(self) -> None:
        self.mode, self._itf, self._vlan = "enable", None, None

    def _resolve_interface(self, text: str) -> LabInterface | None:
        itf = self.device.interface(text)
        if itf is not None:
            return itf
        m = _IFNAME.fullmatch(text)
        if not m:
            return None
        kind, number = m.group(1).lower(), m.group(2)
        found = []
        for cand in self.device.interfaces:
            cm = _IFNAME.fullmatch(cand.name)
            if cm and cm.group(2) == number and cm.group(1).lower().startswith(kind):
                found.append(cand)
        return found[0] if len(found) == 1 else None

    # ------------------------------------------------------------ EXEC commands

    def cmd_enable(self) -> str:
        if self.mode != "user":
            return ""

        def answer(secret: str) -> str:
            if self.check_password(secret):
                self.mode = "enable"
                return ""
            return "% Access denied\n\n"

        self.ask("Password: ", answer, echo=False)
        return ""

    def cmd_disable(self) -> str:
        self.mode = "user"
        return ""

    def cmd_exit(self) -> str:
        if self.mode == "config":
            self._to_exec()
            return ""
        if self.mode in ("config-if", "config-vlan"):
            self.mode, self._itf, self._vlan = "config", None, None
            return ""
        self.closed = True
        return ""

    def cmd_end(self) -> str:
        self._to_exec()
        return ""

    def cmd_noop(self, *_: Any) -> str:
        return ""

    def cmd_configure(self) -> str:
        self.mode = "config"
        return "Enter configuration commands, one per line.  End with CNTL/Z.\n"

    def cmd_write_memory(self) -> str:
        self.device.saved_config = self.render_running_config()
        return "Building configuration...\n[OK]\n"

    def cmd_copy_run_start(self) -> str:
        def answer(name: str) -> str:
            if name.strip() not in ("", "startup-config"):
                return f"%Error opening {name.strip()} (Permission denied)\n"
            return self.cmd_write_memory()

        self.ask("Destination filename [startup-config]? ", answer)
        return ""

    def cmd_do(self, text: str) -> str:
        rest, pipe = _split_pipe(text)
        tokens = tokenize(rest)
        match = parse(_ENABLE, tokens, rest)
        if match.error:
            offset = len(self.prompt()) + 3  # "do "
            if match.error == "invalid":
                return " " * (offset + match.col) + "^\n% Invalid input detected at '^' marker.\n\n"
            return self._error(match, rest)
        if match.handler in (CiscoIosShell.cmd_configure, CiscoIosShell.cmd_exit, CiscoIosShell.cmd_disable):
            return ""
        assert match.handler is not None
        try:
            output = match.handler(self, *(match.args or []))
        except BadInput:
            return "% Invalid input detected at '^' marker.\n\n"
        return _apply_pipe(output, pipe) if pipe else output

    def show_clock(self) -> str:
        now = self.clock()
        tm = time.gmtime(now)
        ms = int((now % 1) * 1000)
        return time.strftime(f"*%H:%M:%S.{ms:03d} UTC %a %b {tm.tm_mday} %Y", tm) + "\n"

    def show_version(self) -> str:
        d = self.device
        years, weeks, days, hours, minutes = uptime_parts(self.clock() - d.boot_time)
        parts = []
        for value, unit in ((years, "year"), (weeks, "week"), (days, "day"), (hours, "hour")):
            if value:
                parts.append(f"{value} {unit}{'s' if value != 1 else ''}")
        parts.append(f"{minutes} minute{'s' if minutes != 1 else ''}")
        physical = sum(1 for i in d.interfaces if "ethernet" in i.name.lower())
        serial = "9" + pseudo_mac(d.name).replace(":", "")[2:11].upper()
        return (
            f"Cisco IOS Software, IOSv Software (VIOS-ADVENTERPRISEK9-M), Version {IOS_VERSION}, "
            "RELEASE SOFTWARE (fc3)\n"
            "Technical Support: http://www.cisco.com/techsupport\n"
            "Copyright (c) 1986-2021 by Cisco Systems, Inc.\n"
            "Compiled Tue 06-Jul-21 16:09 by prod_rel_team\n"
            "\n\n"
            "ROM: Bootstrap program is IOSv\n"
            "\n"
            f"{d.name} uptime is {', '.join(parts)}\n"
            "System returned to ROM by reload\n"
            'System image file is "flash0:/vios-adventerprisek9-m"\n'
            "Last reload reason: Unknown reason\n"
            "\n\n\n"
            f"cisco IOSv (revision 1.0) with  with {d.memory_total_kb}K/{d.memory_total_kb // 8}K "
            "bytes of memory.\n"
            f"Processor board ID {serial}\n"
            f"{physical} Gigabit Ethernet interfaces\n"
            "DRAM configuration is 72 bits wide with parity disabled.\n"
            "256K bytes of non-volatile configuration memory.\n"
            "2097152K bytes of ATA System CompactFlash 0 (Read/Write)\n"
            "\n"
            "Configuration register is 0x0\n"
            "\n"
        )

    def show_interfaces(self, name: str | None = None) -> str:
        if name is None:
            itfs = list(self.device.interfaces)
        else:
            one = self._resolve_interface(name)
            if one is None:
                raise BadInput(name)
            itfs = [one]
        return "".join(self._interface_block(itf) for itf in itfs)

    def _interface_block(self, itf: LabInterface) -> str:
        now = self.clock()
        in_oct, out_oct, in_err, out_err = interface_counters(itf, now)
        status, proto = _status(itf)
        mac = _dotted_mac(itf.mac)
        lines = [
            f"{itf.name} is {status}, line protocol is {proto} ",
            f"  Hardware is iGbE, address is {mac} (bia {mac})",
        ]
        if itf.alias:
            lines.append(f"  Description: {itf.alias}")
        if itf.ip_address:
            lines.append(f"  Internet address is {itf.ip_address}")
        rate_in, rate_out = (int(itf.in_rate_bps), int(itf.out_rate_bps)) if itf.oper_up else (0, 0)
        load_in = min(255, max(1, rate_in * 255 // max(1, itf.speed_mbps * 1_000_000)))
        load_out = min(255, max(1, rate_out * 255 // max(1, itf.speed_mbps * 1_000_000)))
        lines += [
            f"  MTU 1500 bytes, BW {itf.speed_mbps * 1000} Kbit/sec, DLY 10 usec, ",
            f"     reliability 255/255, txload {load_out}/255, rxload {load_in}/255",
            "  Encapsulation ARPA, loopback not set",
            "  Keepalive set (10 sec)",
            f"  Full-duplex, {itf.speed_mbps}Mb/s, media type is RJ45",
            "  output flow-control is unsupported, input flow-control is unsupported",
            "  ARP type: ARPA, ARP Timeout 04:00:00",
            "  Last input 00:00:00, output 00:00:00, output hang never",
            '  Last clearing of "show interface" counters never',
            "  Input queue: 0/75/0/0 (size/max/drops/flushes); Total output drops: 0",
            "  Queueing strategy: fifo",
            "  Output queue: 0/40 (size/max)",
            f"  5 minute input rate {rate_in} bits/sec, {rate_in // 4000} packets/sec",
            f"  5 minute output rate {rate_out} bits/sec, {rate_out // 4000} packets/sec",
            f"     {in_oct // 500} packets input, {in_oct} bytes, 0 no buffer",
            "     Received 0 broadcasts (0 multicasts)",
            "     0 runts, 0 giants, 0 throttles ",
            f"     {in_err} input errors, {in_err} CRC, 0 frame, 0 overrun, 0 ignored",
            "     0 watchdog, 0 multicast, 0 pause input",
            f"     {out_oct // 500} packets output, {out_oct} bytes, 0 underruns",
            f"     {out_err} output errors, 0 collisions, 1 interface resets",
            "     0 unknown protocol drops",
            "     0 babbles, 0 late collision, 0 deferred",
            "     0 lost carrier, 0 no carrier, 0 pause output",
            "     0 output buffer failures, 0 output buffers swapped out",
        ]
        return "\n".join(lines) + "\n"

    def show_interfaces_description(self) -> str:
        lines = [f"{'Interface':<31}{'Status':<15}{'Protocol':<9}Description"]
        for itf in self.device.interfaces:
            status, proto = _status(itf)
            status = "admin down" if status == "administratively down" else status
            lines.append(f"{short_ifname(itf.name):<31}{status:<15}{proto:<9}{itf.alias}")
        return "\n".join(lines) + "\n"

    def show_ip_interface_brief(self) -> str:
        lines = [f"{'Interface':<22} {'IP-Address':<15} OK? Method Status                Protocol"]
        for itf in self.device.interfaces:
            status, proto = _status(itf)
            if itf.ip_address:
                ip, method = itf.ip_address.split("/")[0], "NVRAM"
            else:
                ip, method = "unassigned", "unset"
            lines.append(f"{itf.name:<22} {ip:<15} YES {method:<6} {status:<21} {proto}")
        return "\n".join(lines) + "\n"

    def show_lldp_neighbors(self) -> str:
        lines = [
            "Capability codes:",
            "    (R) Router, (B) Bridge, (T) Telephone, (C) DOCSIS Cable Device",
            "    (W) WLAN Access Point, (P) Repeater, (S) Station, (O) Other",
            "",
            "Device ID           Local Intf     Hold-time  Capability      Port ID",
        ]
        count = 0
        for itf in self.device.interfaces:
            if itf.neighbor is None or not itf.oper_up:
                continue
            remote, remote_if = itf.neighbor
            lines.append(f"{remote[:20]:<20}{short_ifname(itf.name):<15}{'120':<11}{'B,R':<16}{remote_if}")
            count += 1
        lines += ["", f"Total entries displayed: {count}", ""]
        return "\n".join(lines) + "\n"

    def show_running_config(self) -> str:
        body = self.render_running_config()
        return f"Building configuration...\n\nCurrent configuration : {len(body)} bytes\n{body}"

    def show_running_config_interface(self, name: str) -> str:
        itf = self._resolve_interface(name)
        if itf is None:
            raise BadInput(name)
        block = "\n".join(_interface_config(itf))
        size = len(block) + 1
        return f"Building configuration...\n\nCurrent configuration : {size} bytes\n!\n{block}\nend\n"

    def show_startup_config(self) -> str:
        if self.device.saved_config is None:
            return "startup-config is not present\n"
        return f"Using {len(self.device.saved_config)} out of 262144 bytes\n{self.device.saved_config}"

    def show_vlan_brief(self) -> str:
        lines = [
            "",
            "VLAN Name                             Status    Ports",
            "---- -------------------------------- --------- -------------------------------",
        ]
        vlans = {1: "default", **self.device.vlans}
        for vid in sorted(vlans):
            ports = [
                short_ifname(i.name)
                for i in self.device.interfaces
                if (i.access_vlan or (1 if vid == 1 and i.ip_address is None else None)) == vid
            ]
            lines.append(f"{vid:<4} {vlans[vid] or f'VLAN{vid:04d}':<32} active    {', '.join(ports)}")
        return "\n".join(lines) + "\n"

    def render_running_config(self) -> str:
        d = self.device
        last_at, last_by = self.shared.get("last_change", (d.boot_time, "admin"))
        out = [
            "!",
            f"! Last configuration change at {_ios_time(last_at)} by {last_by}",
            "!",
            f"version {IOS_VERSION.split('(')[0]}",
            "service timestamps debug datetime msec",
            "service timestamps log datetime msec",
            "no service password-encryption",
            "!",
            f"hostname {d.name}",
            "!",
            "boot-start-marker",
            "boot-end-marker",
            "!",
            "no aaa new-model",
            "!",
            "no ip domain lookup",
            "!",
        ]
        for vid in sorted(d.vlans):
            out.append(f"vlan {vid}")
            if d.vlans[vid]:
                out.append(f" name {d.vlans[vid]}")
            out.append("!")
        for itf in d.interfaces:
            out += _interface_config(itf)
            out.append("!")
        if d.sys_location:
            out.append(f"snmp-server location {d.sys_location}")
        if d.sys_contact:
            out.append(f"snmp-server contact {d.sys_contact}")
        out += ["!", "line con 0", "line vty 0 4", " login local", " transport input ssh", "!", "end", ""]
        return "\n".join(out)

    # ---------------------------------------------------------- config commands

    def cfg_interface(self, name: str) -> str:
        itf = self._resolve_interface(name)
        if itf is None:
            raise BadInput(name)
        self.mode, self._itf = "config-if", itf
        return ""

    def cfg_vlan(self, vid: int) -> str:
        if vid not in self.device.vlans:
            self._touched()
        self.device.vlans.setdefault(vid, f"VLAN{vid:04d}")
        self.mode, self._vlan = "config-vlan", vid
        return ""

    def cfg_no_vlan(self, vid: int) -> str:
        self._touched()
        self.device.vlans.pop(vid, None)
        return ""

    def cfg_vlan_name(self, name: str) -> str:
        self._touched()
        assert self._vlan is not None
        self.device.vlans[self._vlan] = name
        return ""

    def cfg_vlan_no_name(self) -> str:
        self._touched()
        assert self._vlan is not None
        self.device.vlans[self._vlan] = f"VLAN{self._vlan:04d}"
        return ""

    def _touched(self) -> None:
        self.shared["last_change"] = (self.clock(), self.username)

    def _set(self, field: str, value: Any) -> None:
        self._touched()
        itf = self._itf
        assert itf is not None
        if getattr(itf, field) != value:
            setattr(itf, field, value)
            if field in ("admin_up", "alias", "ip_address"):
                self.changed(itf)

    def if_description(self, text: str) -> str:
        self._set("alias", text[:240])
        return ""

    def if_no_description(self, *_: Any) -> str:
        self._set("alias", "")
        return ""

    def if_shutdown(self) -> str:
        self._touched()
        assert self._itf is not None
        if set_admin_state(self._itf, False, self.clock()):
            self.changed(self._itf)
        return ""

    def if_no_shutdown(self) -> str:
        self._touched()
        assert self._itf is not None
        if set_admin_state(self._itf, True, self.clock()):
            self.changed(self._itf)
        return ""

    def if_ip_address(self, address: str, mask: str) -> str:
        plen = mask_to_prefix(mask)
        if plen is None or plen == 0:
            bits = int.from_bytes(bytes(int(o) for o in mask.split(".")), "big")
            return f"Bad mask 0x{bits:X} for address {address}\n"
        self._set("ip_address", f"{address}/{plen}")
        return ""

    def if_no_ip_address(self, *_: Any) -> str:
        self._set("ip_address", None)
        return ""

    def if_switchport_access_vlan(self, vid: int) -> str:
        out = ""
        if vid not in self.device.vlans:
            self.device.vlans[vid] = f"VLAN{vid:04d}"
            out = f"% Access VLAN does not exist. Creating vlan {vid}\n"
        self._set("access_vlan", vid)
        return out

    def if_no_switchport_access_vlan(self, *_: Any) -> str:
        self._set("access_vlan", None)
        return ""


def _status(itf: LabInterface) -> tuple[str, str]:
    if not itf.admin_up:
        return "administratively down", "down"
    return ("up", "up") if itf.link_up else ("down", "down")


def _interface_config(itf: LabInterface) -> list[str]:
    lines = [f"interface {itf.name}"]
    if itf.alias:
        lines.append(f" description {itf.alias}")
    if itf.access_vlan is not None:
        lines.append(f" switchport access vlan {itf.access_vlan}")
        lines.append(" switchport mode access")
    if itf.ip_address:
        addr, plen = itf.ip_address.split("/")
        lines.append(f" ip address {addr} {prefix_to_mask(int(plen))}")
    elif itf.access_vlan is None:
        lines.append(" no ip address")
    if not itf.admin_up:
        lines.append(" shutdown")
    lines.append(f" speed {itf.speed_mbps}" if itf.speed_mbps <= 1000 else " speed auto")
    return lines


def _dotted_mac(mac: str) -> str:
    hexdigits = mac.replace(":", "").replace("-", "").replace(".", "").lower().ljust(12, "0")
    return f"{hexdigits[0:4]}.{hexdigits[4:8]}.{hexdigits[8:12]}"


def _ios_time(now: float) -> str:
    return time.strftime("%H:%M:%S UTC %a %b %d %Y", time.gmtime(now))


def _split_pipe(line: str) -> tuple[str, list[tuple[str, str]]]:
    if "|" not in line:
        return line, []
    command, *rest = line.split("|")
    pipes = []
    for seg in rest:
        verb, _, arg = seg.strip().partition(" ")
        pipes.append((verb.lower(), arg.strip()))
    return command, pipes


def _apply_pipe(output: str, pipes: list[tuple[str, str]]) -> str:
    lines = output.split("\n")
    for verb, arg in pipes:
        try:
            pattern = re.compile(arg)
        except re.error:
            return "% Invalid regular expression\n"
        if "include".startswith(verb) and verb:
            lines = [ln for ln in lines if pattern.search(ln)]
        elif "exclude".startswith(verb) and verb:
            lines = [ln for ln in lines if not pattern.search(ln)]
        elif "begin".startswith(verb) and verb:
            idx = next((n for n, ln in enumerate(lines) if pattern.search(ln)), len(lines))
            lines = lines[idx:]
        elif "section".startswith(verb) and verb:
            # a matching top-level line and the indented lines under it
            kept, inside = [], False
            for ln in lines:
                if ln[:1] not in (" ", ""):
                    inside = bool(pattern.search(ln))
                elif not inside and pattern.search(ln):
                    kept.append(ln)
                    continue
                if inside and ln:
                    kept.append(ln)
            lines = kept
        elif "count".startswith(verb) and verb:
            lines = [f"Number of lines which match regexp = {sum(1 for ln in lines if pattern.search(ln))}"]
        else:
            return "% Invalid input detected at '|' marker.\n"
    text = "\n".join(lines)
    return text if text.endswith("\n") or not text else text + "\n"


# ---------------------------------------------------------------- command trees
# Built once at import and shared by every session: the tree is data, handlers are the
# unbound methods above.

S = CiscoIosShell
_IF_ARG = _interface_arg_parser


def _show_tree(privileged: bool) -> Node:
    children: dict[str, Node] = {
        "version": kw(S.show_version),
        "clock": kw(S.show_clock),
        "interfaces": kw(
            S.show_interfaces,
            arg=Arg("interface", _IF_ARG, kw(S.show_interfaces)),
            description=kw(S.show_interfaces_description),
        ),
        "ip": kw(interface=kw(brief=kw(S.show_ip_interface_brief))),
        "lldp": kw(neighbors=kw(S.show_lldp_neighbors)),
        "vlan": kw(S.show_vlan_brief, brief=kw(S.show_vlan_brief)),
    }
    if privileged:
        children["running-config"] = kw(
            S.show_running_config,
            interface=kw(arg=Arg("interface", _IF_ARG, kw(S.show_running_config_interface))),
        )
        children["startup-config"] = kw(S.show_startup_config)
    return Node(kw=children)


_TERMINAL = kw(
    length=kw(arg=Arg("lines", int_range(0, 512), kw(S.cmd_noop))),
    width=kw(arg=Arg("columns", int_range(0, 512), kw(S.cmd_noop))),
    monitor=kw(S.cmd_noop),
    no=kw(monitor=kw(S.cmd_noop)),
)

_USER = kw(
    enable=kw(S.cmd_enable),
    exit=kw(S.cmd_exit),
    logout=kw(S.cmd_exit),
    quit=kw(S.cmd_exit),
    show=_show_tree(privileged=False),
    terminal=_TERMINAL,
)

_ENABLE = kw(
    enable=kw(S.cmd_enable),
    disable=kw(S.cmd_disable),
    exit=kw(S.cmd_exit),
    logout=kw(S.cmd_exit),
    quit=kw(S.cmd_exit),
    show=_show_tree(privileged=True),
    terminal=_TERMINAL,
    configure=kw(S.cmd_configure, terminal=kw(S.cmd_configure)),
    write=kw(S.cmd_write_memory, memory=kw(S.cmd_write_memory)),
    copy=kw(running_config=kw(startup_config=kw(S.cmd_copy_run_start))),
)

_DO = kw(arg=Arg("command", None, kw(S.cmd_do), rest=True))
_VLAN_ID = int_range(1, 4094)

_CONFIG = kw(
    interface=kw(arg=Arg("interface", _IF_ARG, kw(S.cfg_interface))),
    vlan=kw(arg=Arg("vlan-id", _VLAN_ID, kw(S.cfg_vlan))),
    no=kw(vlan=kw(arg=Arg("vlan-id", _VLAN_ID, kw(S.cfg_no_vlan)))),
    do=_DO,
    end=kw(S.cmd_end),
    exit=kw(S.cmd_exit),
)

_CONFIG_IF = kw(
    description=kw(arg=Arg("text", None, kw(S.if_description), rest=True)),
    shutdown=kw(S.if_shutdown),
    ip=kw(address=kw(arg=Arg("address", ipv4, kw(arg=Arg("mask", ipv4, kw(S.if_ip_address)))))),
    switchport=kw(
        S.cmd_noop,
        mode=kw(access=kw(S.cmd_noop)),
        access=kw(vlan=kw(arg=Arg("vlan-id", _VLAN_ID, kw(S.if_switchport_access_vlan)))),
    ),
    no=kw(
        description=kw(S.if_no_description, arg=Arg("text", None, kw(S.if_no_description), rest=True)),
        shutdown=kw(S.if_no_shutdown),
        ip=kw(address=kw(S.if_no_ip_address, arg=Arg("any", None, kw(S.if_no_ip_address), rest=True))),
        switchport=kw(
            access=kw(
                vlan=kw(
                    S.if_no_switchport_access_vlan,
                    arg=Arg("vlan-id", _VLAN_ID, kw(S.if_no_switchport_access_vlan)),
                )
            ),
        ),
    ),
    do=_DO,
    end=kw(S.cmd_end),
    exit=kw(S.cmd_exit),
)

_CONFIG_VLAN = kw(
    name=kw(arg=Arg("name", lambda t, i: (t[i].text[:32], 1), kw(S.cfg_vlan_name))),
    no=kw(name=kw(S.cfg_vlan_no_name)),
    do=_DO,
    end=kw(S.cmd_end),
    exit=kw(S.cmd_exit),
)
