"""Models of the annotation app (added by later issues)."""
