-- Drills (issue 19, docs/drills.md): an incident opened by a game-day alert. Reports, SLA
-- compliance, similar incidents and exports leave drills out unless asked to include them.
-- Applied inside a transaction by activities.db.

ALTER TABLE incidents ADD COLUMN drill boolean NOT NULL DEFAULT false;
CREATE INDEX incidents_drills_idx ON incidents (created_at) WHERE drill;
