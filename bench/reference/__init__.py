"""Frozen copies of earlier code, measured beside today's as the reference in one run."""
