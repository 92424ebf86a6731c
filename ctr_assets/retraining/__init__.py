"""One retrain check, start to finish, and the decision record it leaves."""
