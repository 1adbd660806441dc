"""Offline evaluation on the real public data: scenario, simulation, oracles, metrics, report."""
