"""On-vehicle edge agent (issue D): what runs on each scooter's Raspberry Pi / Jetson.

It reads the vehicle's sensors at the seed's adaptive rate (5 Hz in a trip, 1 Hz normally, 0.1 Hz
parked with the battery above 80 %), numbers every reading with a persistent sequence number `seq`
and publishes it with MQTT QoS 1 to `telemetry/{vehicle_id}`, in the seed's payload (`wire`; the
pipeline's `udfs.telemetry_schema` validates it). Every reading goes through a bounded on-disk spool
and leaves it only when the broker acknowledged it, so an outage or a restart loses nothing (unless
the spool fills up: then the oldest are dropped and counted); messages that waited for a reconnect
go out in order, flagged `"resent": true`.

Its own distribution, fleet-edge-agent (pyproject.toml in this folder): paho-mqtt and the standard
library (json, sqlite3, ssl), nothing of the pipeline's, so it installs on a vehicle alone.

Modules: `wire` (the payload contract: id range, timestamp form, encoding), `sensors` (SensorSource,
the vehicle mode), `feed` (the sensor daemon's JSON lines), `rate` (readings per second by mode),
`spool` (the SQLite store-and-forward spool), `backoff` (reconnect delays), `mqtt_client` (paho
client, TLS, credentials), `config` (AgentConfig), `agent` (the loop), `cli` (`edge-agent`).
"""
