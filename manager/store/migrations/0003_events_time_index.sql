-- Event ingest writes every index entry of every event: the time index
-- need not carry the 32-byte event ID. Paging orders by (time, id), and
-- both PostgreSQL (incremental sort) and SQLite (temp B-tree for the right
-- part of ORDER BY) sort the few rows that share a time on the fly.
DROP INDEX events_time;
CREATE INDEX events_time ON events (tenant_id, time);
