"""Herald's wiring: settings, metrics, the pipeline composition, the HTTP endpoints and the CLI.

This package is the only place that builds and connects the stages
(consumers -> schemas -> catalog -> renderers -> senders, with the ledger beside them).
`herald.errors` is the one leaf module every stage may import.
"""
