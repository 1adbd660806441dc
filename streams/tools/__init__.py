"""Bounded traffic tools: ``gar produce`` (load generator), ``gar carbon-feed`` (grid intensity
replay) and ``gar fleet`` (serving-fleet simulator). Each stops after a count or a duration."""
