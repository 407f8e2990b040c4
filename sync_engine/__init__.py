"""The domain: sync rules, services, provider adapters, jobs and events."""
