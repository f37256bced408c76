package output

import (
	"github.com/redpanda-data/benthos/v4/public/service"
)

// writerMetrics are the output's own metrics, labelled by stream (and shard).
type writerMetrics struct {
	records, bytes, throttled *service.MetricCounter // stream, shard
	userRecords               *service.MetricCounter // stream, shard
	resent                    *service.MetricCounter // stream
	retries, failed           *service.MetricCounter // stream
	refreshes, mispredicted   *service.MetricCounter // stream
	requestLatency            *service.MetricTimer   // stream
}

func newWriterMetrics(m *service.Metrics) writerMetrics {
	return writerMetrics{
		records:        m.NewCounter("kinesis_output_records", "stream", "shard"),
		bytes:          m.NewCounter("kinesis_output_bytes", "stream", "shard"),
		throttled:      m.NewCounter("kinesis_output_throttled", "stream", "shard"),
		userRecords:    m.NewCounter("kinesis_output_user_records", "stream", "shard"),
		resent:         m.NewCounter("kinesis_output_aggregate_resent", "stream"),
		retries:        m.NewCounter("kinesis_output_retries", "stream"),
		failed:         m.NewCounter("kinesis_output_failed", "stream"),
		refreshes:      m.NewCounter("kinesis_output_shard_map_refreshes", "stream"),
		mispredicted:   m.NewCounter("kinesis_output_shard_mispredicted", "stream"),
		requestLatency: m.NewTimer("kinesis_output_put_records_latency_ns", "stream"),
	}
}
