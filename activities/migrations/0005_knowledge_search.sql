-- Knowledge of past incidents (issue 19): full-text search over what was written about an
-- incident, trigram similarity of titles, and the dedup-key family, for similar incidents at
-- triage and GET /api/v1/search. Applied inside a transaction by activities.db.
-- pg_trgm is a trusted extension (PostgreSQL 13+): the database's owner may create it.

CREATE EXTENSION IF NOT EXISTS pg_trgm;

-- A dedup key's family: the key with every token holding a digit masked, so
-- "disk-full:db-07" and "disk-full:db-12" are one family ("disk-full:#"). NULL for a key of
-- no letters at all (it would match every other such key).
CREATE FUNCTION incident_dedup_family(key text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN CASE
    WHEN key ~ '[[:alpha:]]'
    THEN regexp_replace(lower(key), '[^-_:./ ]*[0-9][^-_:./ ]*', '#', 'g')
END;

ALTER TABLE incidents
    -- the latest resolution text given (resolve's "resolution"), for similar incidents
    ADD COLUMN resolution text,
    -- title (A), description (B), notes, status updates and resolutions (C), postmortem (D);
    -- rewritten by activities.knowledge.refresh_search on every ticket and review write
    ADD COLUMN search tsvector NOT NULL DEFAULT ''::tsvector,
    ADD COLUMN dedup_family text GENERATED ALWAYS AS (incident_dedup_family(dedup_key)) STORED;

CREATE INDEX incidents_search_idx ON incidents USING gin (search);
CREATE INDEX incidents_title_trgm_idx ON incidents USING gin (title gin_trgm_ops);
CREATE INDEX incidents_family_idx ON incidents (service, dedup_family)
    WHERE dedup_family IS NOT NULL;

-- Rewrite one incident's search document and resolution from its row, its timeline and its
-- postmortem: the ticket and review activities call it after each write, in the same
-- transaction, so the GIN index is always current. Only this function knows the document.
CREATE FUNCTION refresh_incident_search(incident text) RETURNS void
LANGUAGE sql VOLATILE
BEGIN ATOMIC
    UPDATE incidents i SET
        resolution = k.resolution,
        search = setweight(to_tsvector('english', i.title), 'A')
              || setweight(to_tsvector('english', i.description), 'B')
              || setweight(to_tsvector('english', coalesce(k.notes, '')), 'C')
              || setweight(to_tsvector('english', coalesce(
                     (SELECT r.document FROM reviews r WHERE r.number = incident), '')), 'D')
      FROM (
          SELECT string_agg(coalesce(e.details->>'text', e.details->>'resolution',
                                     e.details->>'note', ''), ' ' ORDER BY e.seq) AS notes,
                 (array_agg(e.details->>'resolution' ORDER BY e.seq DESC)
                     FILTER (WHERE e.kind = 'resolved' AND e.details ? 'resolution'))[1]
                     AS resolution
            FROM incident_events e
           WHERE e.number = incident
             AND e.kind IN ('note_added', 'status_update_posted', 'resolved', 'acknowledged',
                            'investigating', 'mitigated')
      ) k
     WHERE i.number = incident;
END;

-- The search document of incidents written before this migration.
SELECT refresh_incident_search(number) FROM incidents;
