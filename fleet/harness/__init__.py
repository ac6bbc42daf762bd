"""The failure harness (`telemetry faults run`): inject one failure per scenario on a standalone
cluster, then count every sink against what the input says it must hold."""
