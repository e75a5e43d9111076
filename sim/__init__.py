"""A GitLab API v4 simulator backed by SQLite and real bare git repositories."""
