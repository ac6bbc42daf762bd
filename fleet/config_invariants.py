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
