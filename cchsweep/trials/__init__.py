"""Trial functions: one per kind of experiment, shared by the studies that sweep it."""
