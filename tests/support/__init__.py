"""Shared helpers for the tests: set-ups over the simulator, fakes and sample data."""
