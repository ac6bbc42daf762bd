"""Ingest: the MQTT → Kafka bridge (a service, not a Flink connector) — its rules, its settings,
its event loop, its metrics and health endpoint, its command line."""
