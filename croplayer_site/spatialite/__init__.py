"""The embedded default's database backend (SpatiaLite, connections kept per process)."""
