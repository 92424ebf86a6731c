"""Deployment files that ship with the package (the local stack uses them)."""
