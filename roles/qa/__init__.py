"""The QA role: pipelines, rebases, round trips and parked merge requests."""
