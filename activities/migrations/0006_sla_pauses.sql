-- Pauses of the SLA clocks (issue 20): reports show paused time and judge SLAs on net time.
-- paused_seconds: wall-clock time of the pauses that ended; paused_since / paused_reason:
-- the pause in force (NULL when the clocks run). The whole story is in snapshot and events.
-- Applied inside a transaction by activities.db: no BEGIN/COMMIT here.

ALTER TABLE incidents
    ADD COLUMN paused_seconds double precision NOT NULL DEFAULT 0,
    ADD COLUMN paused_since   timestamptz,
    ADD COLUMN paused_reason  text;
