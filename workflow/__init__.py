"""The event workflow: the pipeline that takes a delivery through the stages (schemas ->
catalog -> renderers -> senders, the ledger beside them), the reminder scheduler, the usage
thresholds and the lease keeper. It depends on the stages and on interfaces (a ledger, an
observer), never on the wiring."""
