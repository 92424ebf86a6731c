"""Training on a Dask cluster: the frame read in parallel partitions of one PostgreSQL
snapshot by the workers, and XGBoost fitted there with `xgboost.dask`."""
