"""`python -m faultloop.cmd ...`: the same CLI as the `faultloop` command."""

from faultloop.cmd.cli import main

main()
