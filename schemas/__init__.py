"""Stage 2: the pydantic schemas of the event contract (EVENTS.md) and the decoder that turns a
raw delivery into a validated `Event`, applying the checks of EVENTS.md section 11 in order."""
