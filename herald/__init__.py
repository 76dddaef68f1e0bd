"""Herald, the notification service of the marketplace and partner portal.

This package is the ground floor and the index of the rooms (README, "Layout"). `errors`,
`faultpoints` and `clock` import nothing of Herald, so every room may stand on them. The rooms
live at the top of the repository and are linked here, so that installed they are one import
name:

    consumers -> schemas -> catalog -> renderers -> senders   the stages, data flows one way
    ledger                                                     beside the stages
    workflow                                                   pipeline, reminders, thresholds
    tools                                                      replay, preview, gallery, ...
    service                                                    the wiring: settings, app, CLI, HTTP
    templates                                                  the emails (package data)
"""
