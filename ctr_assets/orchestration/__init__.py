"""The Dagster layer: assets, checks, resources, sensors and schedules wiring the plain code."""
