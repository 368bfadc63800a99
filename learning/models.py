"""Models of the learning app (added by later issues)."""
