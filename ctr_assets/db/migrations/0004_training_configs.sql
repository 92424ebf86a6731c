-- The training config of the next checks, with its history, like the champion's.

-- Every config a hyperparameter search adopted, with the evidence it was adopted on.
CREATE TABLE IF NOT EXISTS training_configs (
    id                  bigserial PRIMARY KEY,
    created_at          timestamptz NOT NULL DEFAULT now(),
    params              jsonb NOT NULL,         -- TrainingParams fields
    study_name          text,                   -- the Optuna study it came from
    trial_number        integer,
    holdout_mae         double precision,       -- its hold-out MAE when adopted
    baseline_mae        double precision,       -- the config it replaced, same hold-out
    holdout_rows        bigint,
    evidence            jsonb NOT NULL DEFAULT '{}'::jsonb  -- the promotion-style verdict
);

-- The config in force is that of the newest row; a NULL config means the built-in defaults.
-- Adoption and rollback each insert one row, so a change is one statement and the whole
-- history is kept.
CREATE TABLE IF NOT EXISTS training_config_history (
    id                  bigserial PRIMARY KEY,
    config_id           bigint REFERENCES training_configs (id),
    previous_config_id  bigint REFERENCES training_configs (id),
    changed_at          timestamptz NOT NULL DEFAULT now(),
    action              text NOT NULL CHECK (action IN ('adopted', 'rolled_back')),
    reason              text NOT NULL
);

-- Optuna's own tables (RDB storage) live in this schema, away from the product's.
CREATE SCHEMA IF NOT EXISTS optuna;
