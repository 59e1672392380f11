-- Links between incidents (issue 19): related, caused_by/causes, parent_of/child_of. Both
-- sides of every link are rows here, written by record_incident from either incident's
-- linked/unlinked events, so an incident whose run has ended still shows its links.
-- Applied inside a transaction by activities.db.

CREATE TABLE incident_links (
    number    text NOT NULL,
    other     text NOT NULL,
    kind      text NOT NULL
              CHECK (kind IN ('related', 'caused_by', 'causes', 'parent_of', 'child_of')),
    linked_at timestamptz NOT NULL,
    PRIMARY KEY (number, other, kind)
);
CREATE INDEX incident_links_other_idx ON incident_links (other);
