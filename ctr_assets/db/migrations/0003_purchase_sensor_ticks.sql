-- Where the purchase_signals sensor's last tick counted to. Each tick writes its row and
-- commits synchronously: the WAL is then on disk past every transaction the tick saw
-- end, so after a crash no xid below the sensor's cursor is handed out again (see
-- ctr_assets/db/purchases.py). Also tells an operator when the sensor last ticked.
CREATE TABLE IF NOT EXISTS purchase_sensor_ticks (
    sensor          text PRIMARY KEY,
    horizon_xid     xid8 NOT NULL,
    pending_xids    integer NOT NULL,
    ticked_at       timestamptz NOT NULL
);
