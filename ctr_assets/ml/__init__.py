"""The model itself, free of Dagster: hold-out split, training, evaluation, files, decisions."""
