-- Action items tracked by the review workflow: the exact instant an item is due (its
-- reminder, and "overdue" after it), who changed it last, and listings by owner.
ALTER TABLE action_items
    ADD COLUMN due_at timestamptz,
    ADD COLUMN updated_by text;
CREATE INDEX action_items_owner_status_idx ON action_items (owner, status);
CREATE INDEX action_items_open_due_idx ON action_items (due_at) WHERE status = 'open';
