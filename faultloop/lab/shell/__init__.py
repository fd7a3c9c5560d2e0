"""Vendor CLIs for the lab network: pure text state machines over a LabDevice."""

from faultloop.lab.shell.base import Shell
from faultloop.lab.shell.cisco_ios import CiscoIosShell
from faultloop.lab.shell.juniper_junos import JunosShell

__all__ = ["CiscoIosShell", "JunosShell", "Shell"]
