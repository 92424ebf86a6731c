-- The training read keeps only the videos created within its horizon of the newest one
-- (ctr_assets/data/training_frame.py, `RowSelection`): the newest is found from the end of
-- this index instead of by a scan of `videos`. A `videos` table owned by another service
-- may lack the column: then there is nothing to index (and nothing to train on yet).
DO $$
BEGIN
    IF EXISTS (
        SELECT 1 FROM information_schema.columns
        WHERE table_schema = current_schema() AND table_name = 'videos'
          AND column_name = 'created_at'
    ) THEN
        CREATE INDEX IF NOT EXISTS videos_created_at_idx ON videos (created_at);
    END IF;
END
$$;
