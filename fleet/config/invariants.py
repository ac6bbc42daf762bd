"""Relations between settings that no single setting shows, checked when a profile is loaded.

An exactly-once Kafka sink keeps a transaction open from one checkpoint to the next and commits it
when the checkpoint completes, also after a restart (recovery commits what the last completed
checkpoint recorded). If the broker aborts the transaction first (its `transaction.timeout.ms` has
run out), that commit finds nothing and the records are lost — Flink's Kafka connector documents
exactly this. So a transaction must outlive the longest outage the restart strategy rides out, and
the broker must allow a timeout that long.
"""

from __future__ import annotations

# Flink's restart-strategy.exponential-delay.jitter-factor default (jobs/flink_env.py keeps it):
# each wait may be up to 10 % longer.
EXPONENTIAL_DELAY_JITTER = 0.1


def restart_window_ms(strategy: str, attempts: int, delay_ms: int, max_delay_ms: int) -> int:
    """The longest the restart strategy waits, in total, before it gives up: the outage a job
    still recovers from. Exponential delay doubles from `delay_ms` up to `max_delay_ms`."""
    if attempts <= 0:
        return 0
    if strategy == "fixed-delay":
        return attempts * delay_ms
    waits = sum(min(delay_ms * 2**attempt, max_delay_ms) for attempt in range(attempts))
    return int(waits * (1 + EXPONENTIAL_DELAY_JITTER))


def transaction_problems(
    *,
    transaction_timeout_ms: int,
    broker_max_transaction_timeout_ms: int,
    checkpoint_interval_ms: int,
    restart_window: int,
) -> list[str]:
    """Why the exactly-once sinks could fail to start or lose a transaction; empty when they can't."""
    problems = []
    if transaction_timeout_ms > broker_max_transaction_timeout_ms:
        problems.append(
            f"[kafka] transaction_timeout_ms={transaction_timeout_ms} is above the broker's "
            f"transaction.max.timeout.ms ([kafka] broker_max_transaction_timeout_ms="
            f"{broker_max_transaction_timeout_ms}): the broker refuses such a producer and the "
            "exactly-once sinks cannot start"
        )
    # The oldest open transaction was begun up to one checkpoint interval before the failure.
    needed = restart_window + checkpoint_interval_ms
    if transaction_timeout_ms < needed:
        problems.append(
            f"[kafka] transaction_timeout_ms={transaction_timeout_ms} is shorter than the "
            f"longest outage the job recovers from: the restart strategy's waits ({restart_window} ms "
            f"over its attempts) plus one checkpoint interval ([flink] checkpoint_interval_ms="
            f"{checkpoint_interval_ms}) = {needed} ms. The broker would abort a transaction that "
            "recovery still has to commit, and its records would be lost; raise the timeout (up to "
            "the broker's maximum) or shorten the restart strategy"
        )
    return problems


# What the pipeline adds to a payload on its way to Kafka: the enriched fields (zone_id, a
# vehicle_type of at most udfs.vehicle_registry.MAX_VEHICLE_TYPE_CHARS, ingested_at), the key and
# Kafka's per-record overhead; and a DLQ record's fields around its payload.
ENRICHED_OVERHEAD_BYTES = 1024
DLQ_OVERHEAD_BYTES = 4096


def record_size_problems(*, max_payload_bytes: int, max_record_bytes: int) -> list[str]:
    """Why a valid event or a DLQ record could be too large for Kafka; empty when neither can."""
    from udfs.dlq import KEEP_BYTES

    problems = []
    if max_payload_bytes + ENRICHED_OVERHEAD_BYTES > max_record_bytes:
        problems.append(
            f"[schema] max_payload_bytes={max_payload_bytes} lets through events whose enriched record "
            f"(+{ENRICHED_OVERHEAD_BYTES} bytes) is over [kafka] max_record_bytes={max_record_bytes}: "
            "the brokers would refuse valid events"
        )
    dlq_largest = -(-KEEP_BYTES // 3) * 4 + DLQ_OVERHEAD_BYTES  # a kept payload is base64 at worst
    if dlq_largest > max_record_bytes:
        problems.append(
            f"[kafka] max_record_bytes={max_record_bytes} is below the largest DLQ record ({dlq_largest} bytes: "
            f"a payload kept whole up to {KEEP_BYTES} bytes, base64): the DLQ itself would refuse records"
        )
    return problems
