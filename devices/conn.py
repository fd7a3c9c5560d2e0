"""What the rest of the product may do with an open device session.

``devices.ssh.device_session`` yields a netmiko connection typed as ``DeviceConn``: the
few calls config backup, CLI collection and provisioning make, with netmiko's own
signatures (so the driver satisfies the Protocol as it is; the assignment at the end has
mypy check that). The rest of netmiko (transport, file transfer, raw channel reads) is
not part of the type callers get, so a new use of it is a visible change to this file.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from netmiko.base_connection import BaseConnection

# netmiko's answer to a command: text unless a parser (TextFSM, TTP, Genie) was asked for,
# which no caller here does; callers take ``str()`` of it.
Output = str | list[Any] | dict[str, Any]


class DeviceConn(Protocol):
    """An open, authenticated CLI session to one device."""

    @property
    def device_type(self) -> str:
        """The netmiko driver name (``cisco_ios``, ``juniper_junos``, ...)."""
        ...

    def send_command(self, command_string: str) -> Output:
        """Run one command and read its output up to the next prompt."""
        ...

    def send_command_timing(self, command_string: str) -> Output:
        """Run one command and read until the device goes quiet (prompts that change: ``commit``)."""
        ...

    def send_config_set(
        self, config_commands: Sequence[str], *, exit_config_mode: bool = ..., error_pattern: str = ...
    ) -> str:
        """Enter configuration mode and send the lines; raises ``ConfigInvalidException`` when a
        line's output matches ``error_pattern``."""
        ...

    def save_config(self) -> str: ...

    def check_enable_mode(self) -> bool: ...

    def enable(self) -> str: ...

    def check_config_mode(self) -> bool: ...

    def exit_config_mode(self) -> str: ...

    def disconnect(self) -> None: ...


# the static proof that the netmiko driver is a DeviceConn (mypy checks this assignment)
_NETMIKO_IS_A_DEVICE_CONN: type[DeviceConn] = BaseConnection
