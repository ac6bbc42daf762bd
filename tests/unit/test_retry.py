"""connectors/retry.py and its users' policies: attempts, deadline, errors that do not retry, waits.

Expected counts and delays are worked out by hand in the comments, not taken from the helper."""

import random
from types import SimpleNamespace

import pytest
from botocore.exceptions import ClientError
from confluent_kafka import KafkaError, KafkaException, TopicPartition

from connectors import kafka_offsets
from connectors.aws_clients import RetryPolicy, call_with_retry
from connectors.kafka_offsets import retry_settling
from connectors.retry import exponential, full_jitter, retry_call


class Transient(Exception):
    pass


class Flaky:
    """Raises `errors` one after the other, then returns "ok"."""

    def __init__(self, *errors: BaseException):
        self.errors = list(errors)
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


class FakeClock:
    """Time that moves only when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def transient(error: BaseException) -> bool:
    return isinstance(error, Transient)


def test_succeeds_after_transient_failures_sleeping_between_them():
    call, sleeps = Flaky(Transient(), Transient()), []
    assert retry_call(call, retry_if=transient, wait=0.2, attempts=5, sleep=sleeps.append) == "ok"
    assert call.calls == 3 and sleeps == [0.2, 0.2]


def test_gives_up_after_the_attempts_with_the_last_error_and_a_note():
    errors = [Transient(f"#{n}") for n in range(1, 5)]
    call, sleeps = Flaky(*errors), []
    with pytest.raises(Transient) as raised:
        retry_call(call, retry_if=transient, wait=0.1, attempts=3, what="store write", sleep=sleeps.append)
    assert raised.value is errors[2]  # the third call's error, itself, not a wrapper
    assert raised.value.__notes__ == ["store write: gave up after 3 attempts"]
    assert call.calls == 3 and sleeps == [0.1, 0.1]


def test_one_attempt_means_no_retry():
    call, sleeps = Flaky(Transient()), []
    with pytest.raises(Transient):
        retry_call(call, retry_if=transient, wait=1.0, attempts=1, sleep=sleeps.append)
    assert call.calls == 1 and sleeps == []


def test_an_error_the_predicate_refuses_passes_through_at_once_without_a_note():
    error = ValueError("bad request")
    call, sleeps = Flaky(Transient(), error), []
    with pytest.raises(ValueError) as raised:
        retry_call(call, retry_if=transient, wait=0.1, attempts=10, what="x", sleep=sleeps.append)
    assert raised.value is error and not getattr(error, "__notes__", None)
    assert call.calls == 2 and sleeps == [0.1]


def test_keyboard_interrupt_is_never_retried():
    call, sleeps = Flaky(KeyboardInterrupt()), []
    with pytest.raises(KeyboardInterrupt):
        retry_call(call, retry_if=lambda e: isinstance(e, Exception), wait=0.1, attempts=3,
                   sleep=sleeps.append)
    assert call.calls == 1 and sleeps == []


def test_deadline_stops_retrying_once_the_clock_is_past_it():
    # Calls at t = 0, .25, .5, .75, 1.0 (not past the 1.0 s deadline: tried again), 1.25 (past: stop).
    clock = FakeClock()
    call = Flaky(*(Transient() for _ in range(10)))
    with pytest.raises(Transient):
        retry_call(call, retry_if=transient, wait=0.25, deadline_s=1.0, sleep=clock.sleep, clock=clock)
    assert call.calls == 6 and clock.sleeps == [0.25] * 5


def test_deadline_and_attempts_together_stop_at_whichever_comes_first():
    clock = FakeClock()
    call = Flaky(*(Transient() for _ in range(10)))
    with pytest.raises(Transient):
        retry_call(call, retry_if=transient, wait=0.25, attempts=3, deadline_s=10.0,
                   sleep=clock.sleep, clock=clock)
    assert call.calls == 3


def test_without_attempts_or_deadline_it_retries_until_success():
    call, sleeps = Flaky(*(Transient() for _ in range(50))), []
    assert retry_call(call, retry_if=transient, wait=0.0, sleep=sleeps.append) == "ok"
    assert call.calls == 51 and len(sleeps) == 50


def test_a_wait_function_gets_the_number_of_failed_attempts():
    call, sleeps = Flaky(Transient(), Transient(), Transient()), []
    retry_call(call, retry_if=transient, wait=lambda failed: failed * 10.0, attempts=4, sleep=sleeps.append)
    assert sleeps == [10.0, 20.0, 30.0]


def test_attempts_below_one_are_refused():
    with pytest.raises(ValueError, match="attempts"):
        retry_call(lambda: 1, retry_if=transient, wait=0.1, attempts=0)


def test_exponential_doubles_up_to_the_cap():
    wait = exponential(0.05, 1.0)
    assert [wait(n) for n in range(1, 8)] == pytest.approx([0.05, 0.1, 0.2, 0.4, 0.8, 1.0, 1.0])


def test_full_jitter_stays_between_zero_and_the_exponential_ceiling():
    ceilings = {1: 0.05, 2: 0.1, 3: 0.2, 4: 0.4, 5: 0.8, 6: 1.0, 12: 1.0}
    wait = full_jitter(0.05, 1.0, random.Random(7))
    for failed, ceiling in ceilings.items():
        draws = [wait(failed) for _ in range(2_000)]
        assert 0.0 <= min(draws) and max(draws) <= ceiling
        # Uniform over the whole range: some draws near each end.
        assert min(draws) < 0.05 * ceiling and max(draws) > 0.95 * ceiling


def test_full_jitter_draws_from_the_given_generator():
    # Random(3).uniform(0, c) is c * Random(3).random(): the same stream, scaled by the ceilings.
    reference = random.Random(3)
    expected = [0.05 * reference.random(), 0.1 * reference.random(), 0.2 * reference.random()]
    wait = full_jitter(0.05, 1.0, random.Random(3))
    assert [wait(1), wait(2), wait(3)] == pytest.approx(expected)


# -- the users' policies -------------------------------------------------------------------------


def client_error(code: str, status: int = 400) -> ClientError:
    response = {"Error": {"Code": code, "Message": code}, "ResponseMetadata": {"HTTPStatusCode": status}}
    return ClientError(response, "Op")


def test_aws_call_with_retry_retries_throttling_with_full_jitter_and_gives_up_with_a_note():
    policy = RetryPolicy(max_attempts=4, base_delay_s=0.05, max_delay_s=1.0)
    call, sleeps = Flaky(*(client_error("ThrottlingException") for _ in range(5))), []
    with pytest.raises(ClientError) as raised:
        call_with_retry(call, policy=policy, what="Timestream write", sleep=sleeps.append,
                        rng=random.Random(1))
    assert call.calls == 4 and raised.value.__notes__ == ["Timestream write: gave up after 4 attempts"]
    assert len(sleeps) == 3 and all(0.0 <= s <= c for s, c in zip(sleeps, [0.05, 0.1, 0.2], strict=True))


def test_aws_call_with_retry_does_not_retry_a_validation_error():
    call, sleeps = Flaky(client_error("ValidationException")), []
    with pytest.raises(ClientError):
        call_with_retry(call, policy=RetryPolicy(), what="x", sleep=sleeps.append)
    assert call.calls == 1 and sleeps == []


def test_aws_call_with_retry_retries_a_server_error_then_succeeds():
    call, sleeps = Flaky(client_error("Whatever", status=503)), []
    assert call_with_retry(call, policy=RetryPolicy(), what="x", sleep=sleeps.append) == "ok"
    assert call.calls == 2 and len(sleeps) == 1


def test_retry_settling_retries_leadership_errors_only():
    settling = Flaky(KafkaException(KafkaError(KafkaError.LEADER_NOT_AVAILABLE)))
    assert retry_settling(settling, timeout_s=5.0) == "ok" and settling.calls == 2
    other = KafkaException(KafkaError(KafkaError._TIMED_OUT))
    failing = Flaky(other)
    with pytest.raises(KafkaException) as raised:
        retry_settling(failing, timeout_s=5.0)
    assert raised.value is other and failing.calls == 1


class _LoadingCoordinator:
    """A Consumer whose group coordinator answers NOT_COORDINATOR, then COORDINATOR_LOAD_IN_PROGRESS
    (what a broker says for a moment after it restarts), then the group's commits."""

    def __init__(self, config):
        self.answers = [KafkaError.NOT_COORDINATOR, KafkaError.COORDINATOR_LOAD_IN_PROGRESS]
        self.closed = False

    def list_topics(self, topic, timeout):
        return SimpleNamespace(topics={topic: SimpleNamespace(error=None, partitions={0: None, 1: None, 2: None})})

    def committed(self, asked, timeout):
        if self.answers:
            raise KafkaException(KafkaError(self.answers.pop(0)))
        return [TopicPartition(tp.topic, tp.partition, {0: 41, 1: -1001, 2: 7}[tp.partition]) for tp in asked]

    def close(self):
        self.closed = True


def test_committed_offsets_waits_out_a_restarted_brokers_coordinator_and_leaves_out_uncommitted(monkeypatch):
    made: list[_LoadingCoordinator] = []
    monkeypatch.setattr(kafka_offsets, "Consumer", lambda config: made.append(_LoadingCoordinator(config)) or made[-1])
    assert kafka_offsets.committed_offsets("127.0.0.1:1", "g", "t", timeout_s=5.0) == {0: 41, 2: 7}
    assert made[0].answers == [] and made[0].closed
