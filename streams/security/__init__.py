"""Security settings -> client configuration (Kafka SASL/TLS for Faust; see docs/reliability.md)."""
