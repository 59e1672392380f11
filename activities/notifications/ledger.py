"""The statements over the ``notifications`` table that make every delivery happen once:
the ``notify`` activity's pages and the ``sync_slack`` activity's channel posts share them.

A delivery's key is inserted if absent and claimed (``attempts + 1``) only while it is
``pending``, in one round trip (no row back: already ``sent`` or ``failed``, so skipped);
then it is recorded ``sent`` (with the Slack bot's channel and ts, if it posted one),
``failed``, or left pending with its last error for the next attempt.
"""

CLAIM = """
INSERT INTO notifications
    (key, number, seq, event_kind, target, recipient, channel, address, attempts)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, 1)
ON CONFLICT (key) DO UPDATE SET attempts = notifications.attempts + 1
WHERE notifications.status = 'pending'
RETURNING attempts
"""
PRIOR = "SELECT status, last_error, slack_channel, slack_ts FROM notifications WHERE key = %s"
SENT = (
    "UPDATE notifications SET status = 'sent', sent_at = now(), last_error = NULL,"
    " slack_channel = %s, slack_ts = %s WHERE key = %s"
)
FAILED = "UPDATE notifications SET status = 'failed', last_error = %s WHERE key = %s"
RETRY = "UPDATE notifications SET last_error = %s WHERE key = %s"
