"""The engine: passes, claims, runs, resumption, gates asked again and the janitor."""
