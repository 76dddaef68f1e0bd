"""Reports that arrive after the 250 (issue 18): delivery status notifications and complaint
reports sent to the bounce domain, and the signed webhooks of Amazon SES (through SNS) and
SendGrid. Each module parses or verifies one kind of report and turns it into the ledger's
`FeedbackReport`; the listeners that receive them are wired in `service/`."""
