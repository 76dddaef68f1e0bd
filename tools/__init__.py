"""The operator tools: the dead-letter replay, `deliveries find`, preview, the gallery,
publishing examples and the development SMTP sink. The CLI (the wiring room) calls them."""
