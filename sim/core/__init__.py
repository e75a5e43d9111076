"""The simulator's core: the app, its store and HTTP helpers, users and projects, the event bus,
webhooks, faults, rate limits and the demo seed."""
