"""Reading the input tables: the feature contract and the training frame."""
