package io.github.fleettelemetry.flink;

import java.time.LocalDateTime;
import java.time.ZoneOffset;

import org.apache.flink.core.io.SimpleVersionedSerializer;
import org.apache.flink.streaming.api.functions.sink.filesystem.BucketAssigner;
import org.apache.flink.streaming.api.functions.sink.filesystem.bucketassigners.SimpleVersionedStringSerializer;
import org.apache.flink.table.data.RowData;

/**
 * FileSink buckets by the row's own event time: {@code year=YYYY/month=MM/day=DD/hour=HH} of a
 * BIGINT epoch-milliseconds field, in UTC. A replay, a backfill or an edge spool drained hours
 * late lands in the folder of the hour the events happened, not the hour they were written.
 *
 * <p>Flink's own DateTimeBucketAssigner uses the processing time, and nothing in Flink or PyFlink
 * reads a bucket from a field of a RowData (what PyFlink's Row→RowData map hands a Parquet
 * FileSink), hence this class.
 *
 * <p>A row whose field is null goes to {@link #UNKNOWN_BUCKET} rather than failing the job.
 */
public final class EventTimeHourBucketAssigner implements BucketAssigner<RowData, String> {

    private static final long serialVersionUID = 1L;

    /** The bucket of a row without an event time. */
    public static final String UNKNOWN_BUCKET = "event_time=unknown";

    private static final long HOUR_MS = 3_600_000L;

    private final int eventTimeField;

    // One sink subtask sees runs of rows from the same hour: keep the last hour's bucket id.
    private transient long cachedHour = Long.MIN_VALUE;
    private transient String cachedBucket;

    /** @param eventTimeField position of the BIGINT epoch-milliseconds field in the row */
    public EventTimeHourBucketAssigner(int eventTimeField) {
        if (eventTimeField < 0) {
            throw new IllegalArgumentException("eventTimeField must be >= 0, got " + eventTimeField);
        }
        this.eventTimeField = eventTimeField;
    }

    @Override
    public String getBucketId(RowData row, BucketAssigner.Context context) {
        if (eventTimeField >= row.getArity() || row.isNullAt(eventTimeField)) {
            return UNKNOWN_BUCKET;
        }
        long hour = Math.floorDiv(row.getLong(eventTimeField), HOUR_MS);
        if (hour != cachedHour || cachedBucket == null) {
            cachedBucket = hourBucket(hour * HOUR_MS);
            cachedHour = hour;
        }
        return cachedBucket;
    }

    /** The bucket id of an epoch-milliseconds instant, UTC. */
    public static String hourBucket(long epochMillis) {
        LocalDateTime utc = LocalDateTime.ofEpochSecond(Math.floorDiv(epochMillis, 1000L), 0, ZoneOffset.UTC);
        return String.format(
                "year=%04d/month=%02d/day=%02d/hour=%02d",
                utc.getYear(), utc.getMonthValue(), utc.getDayOfMonth(), utc.getHour());
    }

    @Override
    public SimpleVersionedSerializer<String> getSerializer() {
        return SimpleVersionedStringSerializer.INSTANCE;
    }

    @Override
    public String toString() {
        return "EventTimeHourBucketAssigner{eventTimeField=" + eventTimeField + ", UTC}";
    }
}
