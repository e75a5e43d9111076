"""Agent roles, the engine that drives them, and what they run."""
