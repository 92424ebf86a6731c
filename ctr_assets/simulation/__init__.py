"""The demo world: a seeded simulator that fills the input tables."""
