"""Operational views (Grafana dashboards and ``gar report``) from one definition."""
