package input

import (
	"github.com/redpanda-data/benthos/v4/public/service"
)

// inputMetrics are the input's own metrics, labelled by stream and shard.
type inputMetrics struct {
	records, bytes        *service.MetricCounter // stream, shard
	millisBehind          *service.MetricGauge   // stream, shard
	ownedShards           *service.MetricGauge   // stream
	checkpoints           *service.MetricCounter // stream, shard
	takes, handoffs, lost *service.MetricCounter // stream
	throttles             *service.MetricCounter // stream, shard
	kplMalformed          *service.MetricCounter // stream, shard
	kplOutOfRange         *service.MetricCounter // stream, shard
}

func newInputMetrics(m *service.Metrics) *inputMetrics {
	return &inputMetrics{
		records:       m.NewCounter("kinesis_input_records", "stream", "shard"),
		bytes:         m.NewCounter("kinesis_input_bytes", "stream", "shard"),
		millisBehind:  m.NewGauge("kinesis_input_millis_behind", "stream", "shard"),
		ownedShards:   m.NewGauge("kinesis_input_owned_shards", "stream"),
		checkpoints:   m.NewCounter("kinesis_input_checkpoints", "stream", "shard"),
		takes:         m.NewCounter("kinesis_input_lease_takes", "stream"),
		handoffs:      m.NewCounter("kinesis_input_lease_handoffs", "stream"),
		lost:          m.NewCounter("kinesis_input_lease_losses", "stream"),
		throttles:     m.NewCounter("kinesis_input_throttles", "stream", "shard"),
		kplMalformed:  m.NewCounter("kinesis_input_kpl_malformed", "stream", "shard"),
		kplOutOfRange: m.NewCounter("kinesis_input_kpl_out_of_range", "stream", "shard"),
	}
}

// read books one GetRecords answer.
func (m *inputMetrics) read(stream, shard string, f fetched) {
	if len(f.records) > 0 {
		var n int64
		for i := range f.records {
			n += int64(len(f.records[i].Data))
		}
		m.records.Incr(int64(len(f.records)), stream, shard)
		m.bytes.Incr(n, stream, shard)
	}
	m.millisBehind.Set(f.millisBehind, stream, shard)
}
