"""`<prefix>_signals_<n>`: `n` rows each in `prediction_records` and `purchase_signals`.

Made by SQL `generate_series` over 60 days (not by the demo world: at 10M rows it would
take many minutes), plus `videos` rows for the last 14 days of predictions and a
registered champion that made the last 15 days of them, missing the outcomes by about
0.03 so that its accuracy breaches the threshold. Outcomes resolve three days after the
prediction. Bulk-inserted purchase signals share one `ingest_xid`.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from bench.champions import register_small_champion
from bench.databases import (
    GENERATOR_VERSION,
    WORLD_END,
    Log,
    Server,
    ensure,
    model_dir,
    vacuum_analyze,
)
from ctr_assets.db.connection import Database

SIGNAL_DAYS = 60
CHAMPION_DAYS = 15  # the last days of prediction_records belong to the champion


def signals_database(server: Server, rows: int, *, regenerate: bool, log: Log) -> Database:
    name = f"{server.prefix}_signals_{rows}"
    manifest = {
        "kind": "signals",
        "generator": GENERATOR_VERSION,
        "rows": rows,
        "days": SIGNAL_DAYS,
        "end": WORLD_END.isoformat(),
    }
    return ensure(
        server,
        name,
        manifest,
        "SELECT count(*) FROM prediction_records",
        rows,
        lambda db: write_signals(db, rows, model_dir(name)),
        regenerate=regenerate,
        log=log,
    )


_VIDEO_COLUMNS = """
    video_id, platform, objective, duration_s, hook_strength, scene_count, has_captions,
    has_voiceover, text_overlay_ratio, face_time_ratio, music_energy, aspect_ratio,
    daily_budget, audience_size, impressions, clicks, conversions, spend, revenue,
    created_at, updated_at
"""

# Row i of prediction_records is video 'gv<i>', predicted at an even pace over the days.
_PREDICTED_AT = "%(start)s::timestamptz + (i - 1) * %(step)s::interval"


def write_signals(db: Database, rows: int, models: Path) -> None:
    """`rows` predictions and `rows` purchase signals over `SIGNAL_DAYS`, by SQL."""
    start = WORLD_END - timedelta(days=SIGNAL_DAYS)
    step = timedelta(days=SIGNAL_DAYS) / rows
    recent_from = rows - int(rows * 14 / SIGNAL_DAYS)
    params = {"start": start, "step": step, "end": WORLD_END, "from": recent_from, "rows": rows}
    with db.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT setseed(0.42)")
        cur.execute(
            f"""
            INSERT INTO videos ({_VIDEO_COLUMNS})
            SELECT 'gv' || i,
                   (ARRAY['tiktok','instagram','youtube','facebook','snapchat'])[1 + i %% 5],
                   (ARRAY['awareness','traffic','conversions','app_installs'])[1 + i %% 4],
                   5 + random() * 55, random(), 1 + (random() * 12)::int, random() < 0.6,
                   random() < 0.5, random() * 0.6, random(), random(),
                   (ARRAY['9:16','1:1','4:5','16:9'])[1 + (i / 7) %% 4],
                   5 + random() * 200, (1000 + random() * 5e6)::bigint,
                   imps, (imps * (0.01 + random() * 0.05))::bigint, (imps * 0.001)::bigint,
                   imps * 0.01, imps * 0.02, at - interval '5 minutes', %(end)s
            FROM (SELECT i, {_PREDICTED_AT} AS at, (100 + random() * 20000)::bigint AS imps
                  FROM generate_series(%(from)s, %(rows)s) i) s
            """,
            params,
        )
    champion = register_small_champion(
        db, models, WORLD_END, "the champion that made the recent generated predictions"
    )
    params["champion"] = champion
    params["champion_from"] = WORLD_END - timedelta(days=CHAMPION_DAYS)
    with db.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT setseed(0.43)")
        # Outcomes resolve three days after the prediction; the champion misses by about
        # 0.03, so its accuracy breaches the 0.02 threshold.
        cur.execute(
            f"""
            INSERT INTO prediction_records (video_id, model_version, predicted_ctr,
                actual_ctr, actual_impressions, predicted_roas, actual_roas,
                predicted_at, resolved_at)
            SELECT 'gv' || i,
                   CASE WHEN at >= %(champion_from)s THEN %(champion)s ELSE 'legacy-cron' END,
                   greatest(actual + (random() - 0.5) * 0.12, 0.0005),
                   CASE WHEN resolved THEN actual END,
                   CASE WHEN resolved THEN (100 + random() * 20000)::bigint END,
                   CASE WHEN i %% 3 = 0 THEN 1 + random() * 3 END,
                   CASE WHEN resolved AND i %% 3 = 0 THEN 1 + random() * 3 END,
                   at,
                   CASE WHEN resolved THEN at + interval '3 days' END
            FROM (SELECT i, at, 0.005 + random() * 0.06 AS actual,
                         at + interval '3 days' <= %(end)s AS resolved
                  FROM (SELECT i, {_PREDICTED_AT} AS at
                        FROM generate_series(1, %(rows)s) i) t) s
            """,
            params,
        )
        cur.execute(
            """
            INSERT INTO purchase_signals (transaction_id, video_id, amount, currency,
                occurred_at, received_at)
            SELECT 'gt' || i, 'gv' || (1 + (i::bigint * 7919) %% %(rows)s),
                   round((5 + random() * 120)::numeric, 2),
                   CASE WHEN random() < 0.8 THEN 'USD' ELSE 'EUR' END,
                   at, at + random() * interval '10 minutes'
            FROM (SELECT i, %(start)s::timestamptz + (i - 1) * %(step)s::interval AS at
                  FROM generate_series(1, %(rows)s) i) s
            """,
            params,
        )
    vacuum_analyze(db, "videos", "prediction_records", "purchase_signals")
