"""The simulator's merge requests: records, views, discussions, merge, rebase and their
pipelines."""
