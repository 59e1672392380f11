-- Acknowledge links (schemas.ack_tokens) act once: the dashboard's /ack page inserts the
-- token's id here in the transaction that acknowledges, so a second use finds the row.
-- Applied inside a transaction by activities.db: no BEGIN/COMMIT here.

CREATE TABLE ack_link_uses (
    token_id text PRIMARY KEY,
    number   text NOT NULL,
    username text NOT NULL,
    used_at  timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX ack_link_uses_used_at ON ack_link_uses (used_at);
