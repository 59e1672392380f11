-- The public status page (docs/status-page.md): its subscribers and what each was sent.
-- Public status updates themselves are the incident's `status_update_posted` events
-- (incident_events, details->>'public' = 'true'); the index below finds them.
-- Applied inside a transaction by activities.db: no BEGIN/COMMIT here.

-- One row per address ever asked for. `id` is the SHA-256 of the lower-cased address, the
-- subject of the signed confirm/unsubscribe links. Mail goes only to confirmed rows that
-- have not unsubscribed; a confirmation mail at most once per cooldown per address.
CREATE TABLE status_subscribers (
    id                   text PRIMARY KEY,
    email                text NOT NULL,
    created_at           timestamptz NOT NULL DEFAULT now(),
    confirmation_sent_at timestamptz,
    confirmations_sent   int NOT NULL DEFAULT 0,
    confirmation_run     text,              -- the workflow run that may (re)send it now
    confirmed_at         timestamptz,
    unsubscribed_at      timestamptz
);
CREATE INDEX status_subscribers_active_idx ON status_subscribers (confirmed_at)
    WHERE confirmed_at IS NOT NULL AND unsubscribed_at IS NULL;

-- Each public update to each subscriber, at most once (the key is recorded before sending).
CREATE TABLE status_deliveries (
    number        text NOT NULL,
    seq           int NOT NULL,
    subscriber_id text NOT NULL REFERENCES status_subscribers (id),
    status        text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'failed')),
    attempts      int NOT NULL DEFAULT 0,
    last_error    text,
    sent_at       timestamptz,
    PRIMARY KEY (number, seq, subscriber_id)
);

CREATE INDEX incident_events_public_updates_idx ON incident_events (number, seq)
    WHERE kind = 'status_update_posted' AND details->>'public' = 'true';
