"""Concurrent purchase-signal writers: the load of `purchase_load_bench` and its test.

Each writer inserts its share of signals one row per statement, in transactions of 1 to
40 rows, as a purchase service would. Seeded per writer, the transactions differ in size,
some stay open a moment before committing (so commits land out of id order across
writers), some re-deliver a signal already written (no new row), and some roll back
(their rows never exist). The tally says what was committed.
"""

from __future__ import annotations

import random
import time

import psycopg2

ROLLBACK_SHARE = 0.05
DUPLICATE_SHARE = 0.03
LATE_COMMIT_SHARE = 0.2
LATE_COMMIT_MAX_S = 0.02


def write_signals(url: str, writer: int, count: int, seed: int) -> dict[str, int]:
    """Inserts `count` signals (committed or rolled back); returns the tally."""
    rng = random.Random(seed * 1_000 + writer)
    tally = {"committed": 0, "rolled_back": 0, "duplicates": 0, "transactions": 0}
    conn = psycopg2.connect(url, application_name=f"purchase-writer-{writer}")
    try:
        written = 0
        while written < count:
            size = min(rng.randint(1, 40), count - written)
            with conn.cursor() as cur:
                for n in range(written, written + size):
                    cur.execute(
                        "INSERT INTO purchase_signals (transaction_id, video_id, amount, "
                        "currency, occurred_at) VALUES (%s, %s, %s, 'USD', now()) "
                        "ON CONFLICT (transaction_id) DO NOTHING",
                        (f"w{writer}-{n}", f"v{rng.randint(1, 500)}", rng.randint(1, 200)),
                    )
                if rng.random() < DUPLICATE_SHARE:  # the same delivery again: no new row
                    cur.execute(
                        "INSERT INTO purchase_signals (transaction_id, video_id, amount, "
                        "currency, occurred_at) VALUES (%s, 'v1', 1, 'USD', now()) "
                        "ON CONFLICT (transaction_id) DO NOTHING",
                        (f"w{writer}-{written}",),
                    )
                    tally["duplicates"] += 1
            if rng.random() < LATE_COMMIT_SHARE:
                time.sleep(rng.uniform(0, LATE_COMMIT_MAX_S))
            if rng.random() < ROLLBACK_SHARE:
                conn.rollback()
                tally["rolled_back"] += size
            else:
                conn.commit()
                tally["committed"] += size
            tally["transactions"] += 1
            written += size
    finally:
        conn.close()
    return tally
