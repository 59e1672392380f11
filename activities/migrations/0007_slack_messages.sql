-- The Slack bot's pages (docs/slack.md): where chat.postMessage put a delivery (channel and
-- ts), so a retried notify activity that finds the delivery already sent still returns the
-- message for the incident to keep current with chat.update.
-- Applied inside a transaction by activities.db: no BEGIN/COMMIT here.

ALTER TABLE notifications ADD COLUMN slack_channel text;
ALTER TABLE notifications ADD COLUMN slack_ts text;
