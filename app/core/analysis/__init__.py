"""Monitoring analysis over the prediction log: slices, drift, freshness, events, alerts, reviews."""
