"""Benchmarks of the product on generated data, each measured against a reference.

Run from the repository root:

    .venv/bin/python -m bench --scale smoke   # seconds; what the test suite runs
    .venv/bin/python -m bench --scale 1m      # loads at 1M, retrain at 100k and 1M
    .venv/bin/python -m bench --scale full    # adds the 5M load and the 5M retrain

It prints one table per benchmark (median, min, max over interleaved repetitions, and
the ratio to the reference measured in the same run) and writes `bench/results/<scale>.json`.
The generated databases (`ctr_bench_*` on the server of `--admin-url`) are kept between
runs and reused while their contents match; `--regenerate` rebuilds them.
"""
