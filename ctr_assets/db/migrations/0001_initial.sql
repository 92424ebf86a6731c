-- The input tables (owned by other services; created here when missing) and the
-- product's own tables. Every statement is idempotent: the tables may already exist.

CREATE TABLE IF NOT EXISTS videos (
    video_id            text PRIMARY KEY,
    platform            text,
    objective           text,
    duration_s          double precision,
    hook_strength       double precision,
    scene_count         integer,
    has_captions        boolean,
    has_voiceover       boolean,
    text_overlay_ratio  double precision,
    face_time_ratio     double precision,
    music_energy        double precision,
    aspect_ratio        text,
    daily_budget        double precision,
    audience_size       bigint,
    impressions         bigint,
    clicks              bigint,
    conversions         bigint,
    spend               double precision,
    revenue             double precision,
    created_at          timestamptz,
    updated_at          timestamptz
);

CREATE TABLE IF NOT EXISTS prediction_records (
    id                  bigserial PRIMARY KEY,
    video_id            text,
    model_version       text,
    predicted_ctr       double precision,
    actual_ctr          double precision,
    actual_impressions  bigint,
    predicted_roas      double precision,
    actual_roas         double precision,
    predicted_at        timestamptz,
    resolved_at         timestamptz
);

-- Accuracy windows: one model's predictions over a time range.
CREATE INDEX IF NOT EXISTS prediction_records_model_time_idx
    ON prediction_records (model_version, predicted_at);
-- Freshness: the newest resolved outcome.
CREATE INDEX IF NOT EXISTS prediction_records_resolved_at_idx
    ON prediction_records (resolved_at);
-- Per-video look-ups (the predictor records, the simulator checks for existing rows).
CREATE INDEX IF NOT EXISTS prediction_records_video_idx
    ON prediction_records (video_id);

CREATE TABLE IF NOT EXISTS purchase_signals (
    id                  bigserial PRIMARY KEY,
    transaction_id      text UNIQUE,
    video_id            text,
    amount              numeric,
    currency            text,
    occurred_at         timestamptz,
    received_at         timestamptz DEFAULT now()
);

-- The product's own tables.

-- Every trained model, champion or not. The file holds XGBoost's own JSON format.
CREATE TABLE IF NOT EXISTS model_versions (
    version             text PRIMARY KEY,
    created_at          timestamptz NOT NULL DEFAULT now(),
    file_path           text NOT NULL,
    sha256              text NOT NULL,
    training_rows       bigint NOT NULL,
    holdout_rows        bigint NOT NULL,
    holdout_mae         double precision,
    holdout_r2          double precision,
    params              jsonb NOT NULL DEFAULT '{}'::jsonb,
    features            jsonb NOT NULL DEFAULT '[]'::jsonb,
    training_seconds    double precision
);

-- The champion is the version of the newest row. Promotion and rollback each insert
-- one row, so a flip is a single statement and the full history is kept.
CREATE TABLE IF NOT EXISTS champion_history (
    id                  bigserial PRIMARY KEY,
    version             text NOT NULL REFERENCES model_versions (version),
    previous_version    text REFERENCES model_versions (version),
    changed_at          timestamptz NOT NULL DEFAULT now(),
    action              text NOT NULL CHECK (action IN ('promoted', 'rolled_back')),
    reason              text NOT NULL
);

-- One row per retrain check, whatever its outcome.
CREATE TABLE IF NOT EXISTS retrain_decisions (
    id                  bigserial PRIMARY KEY,
    checked_at          timestamptz NOT NULL,
    trigger             text NOT NULL
        CHECK (trigger IN ('schedule', 'purchase_signals', 'accuracy_sensor', 'manual')),
    status              text NOT NULL
        CHECK (status IN ('no_retrain_needed', 'retrained', 'insufficient_data',
                          'rejected', 'error')),
    reason              text NOT NULL,
    mae                 double precision,
    n_samples           bigint,
    threshold           double precision NOT NULL,
    champion_before     text,
    champion_after      text,
    mae_before          double precision,
    mae_after           double precision,
    r2_before           double precision,
    r2_after            double precision,
    training_seconds    double precision,
    run_id              text,
    record              jsonb NOT NULL
);

CREATE INDEX IF NOT EXISTS retrain_decisions_checked_at_idx
    ON retrain_decisions (checked_at);
