-- The platform of each prediction's video, recorded as the prediction is inserted, so that
-- the accuracy per platform reads the window of predictions alone instead of joining it to
-- every row of `videos` (see ctr_assets/data/accuracy.py). A writer may set it itself;
-- left NULL, the trigger looks the video up once, at insert. Rows inserted before this
-- column existed, or before their video, stay NULL and are looked up when measured.
ALTER TABLE prediction_records ADD COLUMN IF NOT EXISTS platform text;

CREATE OR REPLACE FUNCTION prediction_records_platform() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.platform IS NULL THEN
        SELECT v.platform INTO NEW.platform FROM videos v WHERE v.video_id = NEW.video_id;
    END IF;
    RETURN NEW;
END
$$;

DROP TRIGGER IF EXISTS prediction_records_platform ON prediction_records;
CREATE TRIGGER prediction_records_platform
    BEFORE INSERT ON prediction_records
    FOR EACH ROW EXECUTE FUNCTION prediction_records_platform();
