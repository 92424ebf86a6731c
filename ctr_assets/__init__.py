"""ctr_assets: keeps a click-through-rate model honest, as a Dagster code location."""
