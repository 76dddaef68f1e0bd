"""Stage 5: put rendered emails on the wire. `Sender` is the protocol; `smtp` the real one
(aiosmtplib, pooled connections, tenacity retries), `memory` a fake for unit tests."""
