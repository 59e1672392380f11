#!/bin/sh
# Mounted into /docker-entrypoint-initdb.d by docker-compose.yml: runs ONCE, when the postgres
# image initialises an empty data volume (as the superuser, over the local socket). Gives
# Temporal and incidentflow a role each, owning only their own databases, so neither can read
# or drop the other's data. The passwords come from the postgresql service's environment.
# Changing a password later: ALTER ROLE ... PASSWORD (docs/deploy.md), not this script.
set -eu
: "${INCIDENTFLOW_DB_PASSWORD:?}" "${TEMPORAL_DB_PASSWORD:?}"
psql --set ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
    --set incidentflow_password="$INCIDENTFLOW_DB_PASSWORD" \
    --set temporal_password="$TEMPORAL_DB_PASSWORD" <<'SQL'
CREATE ROLE incidentflow LOGIN PASSWORD :'incidentflow_password';
CREATE DATABASE incidentflow OWNER incidentflow;
REVOKE ALL ON DATABASE incidentflow FROM PUBLIC;
CREATE ROLE temporal LOGIN PASSWORD :'temporal_password';
CREATE DATABASE temporal OWNER temporal;
CREATE DATABASE temporal_visibility OWNER temporal;
REVOKE ALL ON DATABASE temporal FROM PUBLIC;
REVOKE ALL ON DATABASE temporal_visibility FROM PUBLIC;
SQL
