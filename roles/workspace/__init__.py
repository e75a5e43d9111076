"""Isolated git workspaces for the roles, and the git and process-group helpers they run on."""
