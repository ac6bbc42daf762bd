"""Exactly-once Kafka sinks for PyFlink jobs.

Records become visible to `read_committed` readers when the checkpoint that covers them completes:
the checkpoint interval is the floor of ingest→topic latency.

Keyed records go through the Table API's Kafka connector: PyFlink's DataStream KafkaSink can only
serialize the whole element as the key, while the SQL connector takes the key from a column
(`key.fields`) and partitions by it with Kafka's murmur2 partitioner, like every other producer here.
"""

from __future__ import annotations

from pyflink.common.serialization import SimpleStringSchema
from pyflink.common.typeinfo import Types
from pyflink.datastream import DataStream, StreamExecutionEnvironment
from pyflink.datastream.connectors.base import DeliveryGuarantee
from pyflink.datastream.connectors.kafka import KafkaRecordSerializationSchema, KafkaSink
from pyflink.table import DataTypes, Schema, StreamTableEnvironment, TableDescriptor

# The default of [kafka] transaction_timeout_ms; a profile's value is checked against the broker's
# maximum and the restart strategy when it is loaded (fleet/config/invariants.py).
TRANSACTION_TIMEOUT_MS = 600_000

KEYED_RECORD_TYPE = Types.ROW_NAMED(["key", "value"], [Types.STRING(), Types.STRING()])


def value_only_sink(
    bootstrap_servers: str, topic: str, transactional_id_prefix: str, *, exactly_once: bool = True,
    transaction_timeout_ms: int = TRANSACTION_TIMEOUT_MS,
) -> KafkaSink:
    """Sink of UTF-8 string values without a key.

    Exactly once (the DLQ): visible at checkpoint. At least once (alerts): visible at once, and a
    replay may repeat a record, which carries its own id for readers to drop repeats.
    """
    builder = (
        KafkaSink.builder()
        .set_bootstrap_servers(bootstrap_servers)
        .set_record_serializer(
            KafkaRecordSerializationSchema.builder().set_topic(topic).set_value_serialization_schema(SimpleStringSchema()).build()
        )
        .set_property("compression.type", "lz4")
    )
    if exactly_once:
        builder = (
            builder.set_delivery_guarantee(DeliveryGuarantee.EXACTLY_ONCE)
            .set_transactional_id_prefix(transactional_id_prefix)
            .set_property("transaction.timeout.ms", str(transaction_timeout_ms))
        )
    else:
        builder = builder.set_delivery_guarantee(DeliveryGuarantee.AT_LEAST_ONCE).set_property("linger.ms", "0")
    return builder.build()


def add_keyed_sink(
    env: StreamExecutionEnvironment,
    records: DataStream,
    bootstrap_servers: str,
    topic: str,
    transactional_id_prefix: str,
    *,
    table_name: str,
    transaction_timeout_ms: int = TRANSACTION_TIMEOUT_MS,
) -> None:
    """Sink a stream of Row(key, value) strings to `topic` exactly once, key → Kafka key.

    The insert is attached to `env`, so one `env.execute()` runs it with the DataStream sinks.
    """
    t_env = StreamTableEnvironment.create(env)
    t_env.create_temporary_table(
        table_name,
        TableDescriptor.for_connector("kafka")
        .schema(Schema.new_builder().column("key", DataTypes.STRING()).column("value", DataTypes.STRING()).build())
        .option("topic", topic)
        .option("properties.bootstrap.servers", bootstrap_servers)
        .option("key.format", "raw")
        .option("key.fields", "key")
        .option("value.format", "raw")
        .option("value.fields-include", "EXCEPT_KEY")
        .option("sink.delivery-guarantee", "exactly-once")
        .option("sink.transactional-id-prefix", transactional_id_prefix)
        .option("properties.transaction.timeout.ms", str(transaction_timeout_ms))
        .option("properties.compression.type", "lz4")
        .build(),
    )
    statements = t_env.create_statement_set()
    statements.add_insert(table_name, t_env.from_data_stream(records))
    statements.attach_as_datastream()
