"""Kafka plumbing shared by every client: connection and security settings, the topic layout,
and topic administration. Below the app, the tools and the orchestration; knows no routing."""
