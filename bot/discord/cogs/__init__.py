"""Discord cogs, one per area."""
