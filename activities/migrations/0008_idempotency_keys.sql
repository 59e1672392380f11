-- Idempotency-Key on the native API's POSTs (starter/api/idempotency.py): the first answer
-- per (credential, key), replayed for 24 h. ``status`` is NULL while the first request runs,
-- so a concurrent duplicate finds the row and is refused instead of acting too.
-- Applied inside a transaction by activities.db: no BEGIN/COMMIT here.

CREATE TABLE idempotency_keys (
    credential  text        NOT NULL,  -- SHA-256 of the bearer token, never the token
    key         text        NOT NULL,
    fingerprint text        NOT NULL,  -- SHA-256 of method, path, query, Prefer and body
    status      int,
    headers     jsonb,
    body        bytea,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (credential, key)
);

CREATE INDEX idempotency_keys_created_at ON idempotency_keys (created_at);
