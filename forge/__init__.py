"""GitLab: gateway, claims, guard, webhooks, and the simulator."""
