-- Signatures of the Slack requests the API accepted (docs/slack.md), so a replayed request
-- is refused by every API replica, not only the one that took it first. A row is kept until
-- the request is too old to pass the 5-minute timestamp check anyway.
-- Applied inside a transaction by activities.db: no BEGIN/COMMIT here.

CREATE TABLE slack_request_replays (
    signature  text PRIMARY KEY,
    expires_at timestamptz NOT NULL
);

CREATE INDEX slack_request_replays_expires_at ON slack_request_replays (expires_at);
