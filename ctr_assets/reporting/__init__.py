"""Pictures and tables for people: what the UI shows beside the numbers."""
