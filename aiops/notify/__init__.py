"""notify: routing, grouping, de-duplication and the persistent outbox; channels are plugins."""
