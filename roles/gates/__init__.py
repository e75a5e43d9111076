"""Gates: decisions through the desk rules, in GitLab, and their recovery."""
