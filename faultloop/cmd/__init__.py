"""The composition root: the only code that imports every package. It assembles a process
(the CLI, the service, the demo) from the kernel, the domains, the API and the lab."""
