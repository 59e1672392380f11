-- incidentflow: the ticket store. PostgreSQL is the system of record and the reporting
-- store; the workflow is the source of truth for live state. Written only by activities,
-- idempotently: incidents are upserted by number, events keyed by (number, seq).
-- Applied inside a transaction by activities.db: no BEGIN/COMMIT here.

CREATE SEQUENCE incident_number_seq;

CREATE TABLE incidents (
    number           text PRIMARY KEY,              -- 'INC-' || number_seq
    number_seq       bigint UNIQUE,
    workflow_id      text NOT NULL,
    run_id           text NOT NULL DEFAULT '',
    title            text NOT NULL,
    description      text NOT NULL DEFAULT '',
    service          text NOT NULL,
    status           text NOT NULL,
    severity         text NOT NULL,
    priority         text NOT NULL,
    impact           text NOT NULL,
    urgency          text NOT NULL,
    category         text NOT NULL,
    labels           jsonb NOT NULL DEFAULT '{}',
    dedup_key        text,
    source           text NOT NULL DEFAULT 'api',
    alert_count      int NOT NULL DEFAULT 1,
    commander        text,
    escalation_level int NOT NULL DEFAULT 0,
    breaches         jsonb NOT NULL DEFAULT '[]',   -- list of schemas.incident.Breach
    snapshot         jsonb NOT NULL,                -- IncidentSnapshot.summary(), mode="json"
    last_seq         int NOT NULL DEFAULT 0,        -- stale writes (lower last_seq) are ignored
    created_at       timestamptz NOT NULL,
    acknowledged_at  timestamptz,
    mitigated_at     timestamptz,
    resolved_at      timestamptz,
    closed_at        timestamptz,
    updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX incidents_status_idx ON incidents (status);
CREATE INDEX incidents_severity_idx ON incidents (severity);
CREATE INDEX incidents_service_idx ON incidents (service);
CREATE INDEX incidents_created_idx ON incidents (created_at DESC, number_seq DESC);
CREATE INDEX incidents_workflow_idx ON incidents (workflow_id);

-- No foreign key to incidents: a batch may carry events before the incident row exists.
CREATE TABLE incident_events (
    number  text NOT NULL,
    seq     int NOT NULL,
    at      timestamptz NOT NULL,
    actor   text NOT NULL,
    kind    text NOT NULL,
    details jsonb NOT NULL DEFAULT '{}',
    PRIMARY KEY (number, seq)
);
CREATE INDEX incident_events_kind_idx ON incident_events (kind);

-- The notification outbox/log: the key (number, seq, target) is recorded before sending.
CREATE TABLE notifications (
    id         bigserial PRIMARY KEY,
    key        text NOT NULL UNIQUE,
    number     text NOT NULL,
    seq        int NOT NULL,
    event_kind text NOT NULL,
    target     text NOT NULL,
    recipient  text NOT NULL,
    channel    text NOT NULL,
    address    text,
    status     text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'failed')),
    attempts   int NOT NULL DEFAULT 0,
    last_error text,
    created_at timestamptz NOT NULL DEFAULT now(),
    sent_at    timestamptz
);
CREATE INDEX notifications_number_seq_idx ON notifications (number, seq);

CREATE TABLE reviews (
    number       text PRIMARY KEY,
    workflow_id  text,
    status       text NOT NULL DEFAULT 'pending'
                 CHECK (status IN ('pending', 'scheduled', 'completed', 'waived', 'overdue')),
    facilitator  text,
    attendees    jsonb NOT NULL DEFAULT '[]',
    scheduled_at timestamptz,
    document     text,                             -- the postmortem, markdown
    summary      text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    completed_at timestamptz
);

CREATE TABLE action_items (
    id         bigserial PRIMARY KEY,
    number     text NOT NULL,
    service    text,
    owner      text NOT NULL,
    title      text NOT NULL,
    due_date   date,
    status     text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'done', 'cancelled')),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    closed_at  timestamptz,
    UNIQUE (number, title, owner)
);
CREATE INDEX action_items_service_status_idx ON action_items (service, status);
