"""On-vehicle edge agent (Raspberry Pi / Jetson): sensor sources, MQTT QoS 1 publishing,
store-and-forward spool, reconnect with backoff. Built in issue D; nothing here yet."""
