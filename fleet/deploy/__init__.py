"""The Kubernetes deployment (deploy/flink-k8s/): overlay settings, sizing from the benchmark
figures, the files `telemetry deploy generate` writes, kustomize, schema validation (docs/kubernetes.md)."""
