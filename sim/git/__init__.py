"""The simulator's git side: real bare repositories, smart HTTP, branches, commits, protection
and push events."""
