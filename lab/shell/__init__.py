"""Vendor CLIs for the lab network: pure text state machines over a LabDevice."""

from lab.shell.base import Shell
from lab.shell.cisco_ios import CiscoIosShell
from lab.shell.juniper_junos import JunosShell

__all__ = ["CiscoIosShell", "JunosShell", "Shell"]
