"""aiosqlite storage: connection, migrations, leases, runs, audit, learnings, settings."""
