"""Mutual-information estimators (all in nats) and closed-form Gaussian truth."""
