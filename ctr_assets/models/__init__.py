"""The model registry: versions on disk and in the database, and which one is champion."""
