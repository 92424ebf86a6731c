"""Serving the champion: predictions for new videos, recorded so the loop closes."""
