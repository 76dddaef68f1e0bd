"""Stage 3: the declarative notification catalog (NOTIFICATIONS.md). Maps a validated event to
the notifications it triggers and resolves each one's recipients. Adding a notification type is
one `NotificationSpec` entry in a domain module plus its template folder."""
