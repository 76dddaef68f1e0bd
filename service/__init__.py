"""The wiring room: settings, the composition of the stages (`app`), the CLI entry points,
the HTTP endpoints and the metrics definitions. Only this room knows every other one."""
