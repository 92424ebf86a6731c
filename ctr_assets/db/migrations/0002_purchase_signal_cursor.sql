-- The purchase_signals sensor's cursor. A bigserial id is handed out at INSERT but becomes
-- visible at COMMIT, so ids do not arrive in order. The id of the inserting transaction
-- does tell when a row is safe to count: once every transaction older than the current
-- snapshot's xmin has ended, all their rows are visible and no more can appear.
ALTER TABLE purchase_signals
    ADD COLUMN IF NOT EXISTS ingest_xid xid8 DEFAULT pg_current_xact_id();

CREATE INDEX IF NOT EXISTS purchase_signals_ingest_xid_idx
    ON purchase_signals (ingest_xid);
