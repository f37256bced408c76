// Package output is the aws_kinesis output: it batches messages into
// PutRecords calls, predicts each record's shard, keeps every shard under its
// write limits and retries only the records that failed.
//
// Register adds it to a Benthos environment under a name of the caller's
// choosing; the benthos-kinesis binary registers it as aws_kinesis.
package output

import (
	"context"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/cenkalti/backoff/v4"
	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/benthos-kinesis/benthos-kinesis/internal/awssession"
)

const (
	fieldStream             = "stream"
	fieldPartitionKey       = "partition_key"
	fieldHashKey            = "hash_key"
	fieldBatching           = "batching"
	fieldMaxRetries         = "max_retries"
	fieldBackoff            = "backoff"
	fieldShardLimits        = "shard_limits"
	fieldRecordsPerSecond   = "records_per_second"
	fieldBytesPerSecond     = "bytes_per_second"
	fieldMaxRecordSize      = "max_record_size"
	fieldOrderPerKey        = "order_per_key"
	fieldShardRefreshPeriod = "shard_refresh_period"
	fieldAggregation        = "aggregation"
	fieldAggEnabled         = "enabled"
	fieldAggMaxSize         = "max_size"
)

// defaultAggMaxSize is the KPL's AggregationMaxSize default: large enough for
// hundreds of small user records, small enough to fit one shard's burst
// (5% of 1 MiB/s) with room to spare.
const defaultAggMaxSize = 51200

// minAggMaxSize keeps an aggregate worth its framing (magic, checksum,
// tables).
const minAggMaxSize = 1024

// Spec is the output's config spec: every field of Redpanda Connect's
// built-in aws_kinesis output with the same meaning, and those that its
// shard-aware pacing adds.
func Spec() *service.ConfigSpec {
	return service.NewConfigSpec().
		Stable().
		Categories("Services", "AWS").
		Summary("Sends messages to a Kinesis data stream, keeping every shard under its write limits.").
		Description(`
A drop-in replacement for the built-in `+"`aws_kinesis`"+` output: every field of it is accepted with the same meaning.

Each record's shard is predicted locally (the MD5 of the partition key, or the explicit hash key, against the hash-key
ranges of the open shards), and each shard is paced to its write limits (`+"`shard_limits`"+`): 1,000 records/s and 1 MiB/s
by default, counting data plus partition key as Kinesis does. When Kinesis throttles a shard anyway (another producer
writes to it) the pace of that shard drops and then climbs back while it is not throttled.

The records of all the batches in flight wait in one queue per shard, and are packed into PutRecords requests of at most
500 records and 5 MiB as each shard's budget allows; a record over 5 MiB (with a raised `+"`max_record_size`"+`) goes alone
through PutRecord. Only the records that fail are retried, after a backoff; a record that can never succeed (over
`+"`max_record_size`"+`, an empty or too long partition key, a bad hash key) fails alone, through a batch error naming it and
the reason, and the rest of the batch is written.

The shard map is refreshed every `+"`shard_refresh_period`"+`, and at once when Kinesis puts a record on another shard
than predicted, so resharding while writing just works.

== Aggregation

With `+"`aggregation.enabled`"+`, the user records bound for one shard are packed into records of the Kinesis Producer
Library's aggregated format, which the KCL and the `+"`aws_kinesis`"+` input of this project (with `+"`deaggregate`"+`) split back
into user records with their own keys. Each shard's limit then counts aggregates, not messages, so small messages go
many times faster. Nothing is held back to wait for more: an aggregate is made of what waits for its shard when the
shard's budget allows a request. Off by default, since consumers that do not deaggregate would see the aggregates.

== Metrics

- `+"`kinesis_output_records`"+`, `+"`kinesis_output_bytes`"+`, `+"`kinesis_output_throttled`"+` (labels stream, shard): Kinesis records, an aggregate counting one
- `+"`kinesis_output_user_records`"+` (labels stream, shard): the messages those records carried
- `+"`kinesis_output_aggregate_resent`"+` (label stream): user records put again, bare, after their aggregate landed on a shard that does not own them (mid-reshard)
- `+"`kinesis_output_retries`"+`, `+"`kinesis_output_failed`"+`, `+"`kinesis_output_shard_map_refreshes`"+`, `+"`kinesis_output_shard_mispredicted`"+` (label stream)
- `+"`kinesis_output_put_records_latency_ns`"+` (label stream)

== Credentials

Without explicit credentials the AWS SDK's default chain is used (environment, shared files, instance role).`+
			service.OutputPerformanceDocs(true, true)).
		Fields(
			service.NewStringField(fieldStream).
				Description("The stream to write to, by name or full ARN.").
				Examples("foo", "arn:aws:kinesis:eu-west-1:111122223333:stream/my-stream").
				LintRule(`root = if this == "" { ["field stream must not be empty"] }`),
			service.NewInterpolatedStringField(fieldPartitionKey).
				Description("The partition key of each record (1 to 256 characters): it decides the shard, and records of one key keep their order in that shard.").
				Examples("${! uuid_v4() }", `${! json("user_id") }`),
			service.NewInterpolatedStringField(fieldHashKey).
				Description("An explicit hash key (a decimal integer between 0 and 2^128-1) that decides the shard instead of the partition key's hash. Empty means the partition key decides.").
				Example(`${! meta("hash_key") }`).
				Default("").
				Advanced(),
			service.NewOutputMaxInFlightField().
				Description("The maximum number of message batches to have in flight at any given time."),
			service.NewBatchPolicyField(fieldBatching),
		).
		Fields(awssession.Fields()...).
		Fields(
			service.NewIntField(fieldMaxRetries).
				Description("How many times a failed record is retried before its message fails. Zero means no limit (then `backoff.max_elapsed_time` bounds the retries).").
				Default(0).
				Example(10).
				LintRule(`root = if this < 0 { ["max_retries must not be negative"] }`).
				Advanced(),
			service.NewBackOffField(fieldBackoff, true, &backoffDefaults).
				Description("The backoff between retries of a failed record. `max_elapsed_time` is counted from the record's first failure.").
				Advanced(),
			service.NewObjectField(fieldShardLimits,
				service.NewIntField(fieldRecordsPerSecond).
					Description("The most records per second written to one shard. Kinesis allows 1,000.").
					Default(1000).
					Example(500).
					LintRule(`root = if this <= 0 { ["shard_limits.records_per_second must be greater than zero"] }`),
				service.NewIntField(fieldBytesPerSecond).
					Description("The most bytes per second (data plus partition key) written to one shard. Kinesis allows 1 MiB.").
					Default(1<<20).
					Example(524288).
					LintRule(`root = if this <= 0 { ["shard_limits.bytes_per_second must be greater than zero"] }`),
			).
				Description("The per-shard write limits the output paces itself to. Lower them to leave room for other producers on the same stream.").
				Advanced(),
			service.NewIntField(fieldMaxRecordSize).
				Description("The largest record (data plus partition key, in bytes) the stream takes. 1 MiB unless the stream's maximum record size was raised (up to 10 MiB). A larger message fails alone.").
				Default(defaultMaxRecord).
				Example(10<<20).
				LintRule(`root = if this <= 0 || this > 10485760 { ["max_record_size must be between 1 and 10485760 bytes"] }`).
				Advanced(),
			service.NewBoolField(fieldOrderPerKey).
				Description("Keep the order of records per partition key even when some are retried: a record is not sent while an earlier record of its key is pending, in its batch or in another batch in flight. It costs throughput when many records share a key. Without it, a batch's records of one key land in order unless one is retried, and batches in flight at once are not ordered among themselves.").
				Default(false).
				Example(true).
				Advanced(),
			service.NewDurationField(fieldShardRefreshPeriod).
				Description("How often the shard map is reloaded. It is also reloaded as soon as Kinesis puts a record on another shard than predicted.").
				Default("1m").
				Example("30s").
				LintRule(`root = if this.parse_duration() <= 0 { ["shard_refresh_period must be greater than zero"] }`).
				Advanced(),
			service.NewObjectField(fieldAggregation,
				service.NewBoolField(fieldAggEnabled).
					Description("Pack the messages bound for one shard into aggregated records (the KPL format). Off, every message is one Kinesis record, as with the built-in output.").
					Default(false).
					Example(true),
				service.NewIntField(fieldAggMaxSize).
					Description("The largest aggregated record, in bytes (magic, protobuf and checksum), at most `max_record_size`. An aggregate is also kept within what the shard's byte budget holds when it is made (by default 5% of `shard_limits.bytes_per_second`, about 52 KB), so raising this far above that changes little. A message too large to share an aggregate goes alone, as it is, after the records before it.").
					Default(defaultAggMaxSize).
					Example(262144).
					LintRule(fmt.Sprintf(`root = if this < %d || this > 10485760 { ["aggregation.max_size must be between %d and 10485760 bytes"] }`, minAggMaxSize, minAggMaxSize)),
			).
				Description("Aggregation of messages into KPL aggregated records. There is no flush delay: records are never held back to wait for more; an aggregate is made of what waits for its shard when the shard's budget allows a request, so at low rates messages go as they come (alone ones as they are) and at the shard limit aggregates fill up. Messages with an explicit hash key aggregate only with messages of the same predicted shard (the aggregate takes its first message's hash key). If an aggregate fails for good, each of its messages fails with the reason; if it is retried, its messages are retried together.").
				Advanced(),
		).
		LintRule(fmt.Sprintf(`root = if this.%s.%s.or(%d) > this.%s.or(%d) { ["aggregation.max_size must not be above max_record_size"] }`,
			fieldAggregation, fieldAggMaxSize, defaultAggMaxSize, fieldMaxRecordSize, defaultMaxRecord))
}

var backoffDefaults = backoffDefaultsStruct()

// writerConfig is the parsed config of one output.
type writerConfig struct {
	stream             string
	partitionKey       *service.InterpolatedString
	partitionKeyMeta   string // set when partition_key is exactly ${! meta("key") }
	hashKey            *service.InterpolatedString
	retry              retryPolicy // max_retries and backoff
	limits             shardLimits
	maxRecordSize      int
	orderPerKey        bool
	maxInFlight        int // requests in flight at most
	shardRefreshPeriod time.Duration
	aggMaxSize         int // the largest aggregate's data; 0: aggregation off
}

func writerConfigFromParsed(pConf *service.ParsedConfig) (conf writerConfig, err error) {
	if conf.stream, err = pConf.FieldString(fieldStream); err != nil {
		return
	}
	if conf.stream == "" {
		return conf, fmt.Errorf("field %s: must not be empty", fieldStream)
	}
	if conf.partitionKey, err = pConf.FieldInterpolatedString(fieldPartitionKey); err != nil {
		return
	}
	if raw, err := pConf.FieldString(fieldPartitionKey); err == nil {
		conf.partitionKeyMeta = metaKeyOf(raw)
	}
	if pConf.Contains(fieldHashKey) {
		if conf.hashKey, err = pConf.FieldInterpolatedString(fieldHashKey); err != nil {
			return
		}
		if s, static := conf.hashKey.Static(); static && s == "" {
			conf.hashKey = nil
		}
	}
	if conf.retry.maxRetries, err = pConf.FieldInt(fieldMaxRetries); err != nil {
		return
	}
	boff, err := pConf.FieldBackOff(fieldBackoff)
	if err != nil {
		return
	}
	conf.retry.initialInterval, conf.retry.maxInterval, conf.retry.maxElapsed = boff.InitialInterval, boff.MaxInterval, boff.MaxElapsedTime
	records, err := pConf.FieldInt(fieldShardLimits, fieldRecordsPerSecond)
	if err != nil {
		return
	}
	bytes, err := pConf.FieldInt(fieldShardLimits, fieldBytesPerSecond)
	if err != nil {
		return
	}
	if conf.maxRecordSize, err = pConf.FieldInt(fieldMaxRecordSize); err != nil {
		return
	}
	conf.limits = shardLimits{recordsPerSecond: float64(records), bytesPerSecond: float64(bytes)}
	if conf.orderPerKey, err = pConf.FieldBool(fieldOrderPerKey); err != nil {
		return
	}
	if conf.maxInFlight, err = pConf.FieldMaxInFlight(); err != nil {
		return
	}
	if conf.shardRefreshPeriod, err = pConf.FieldDuration(fieldShardRefreshPeriod); err != nil {
		return
	}
	aggOn, err := pConf.FieldBool(fieldAggregation, fieldAggEnabled)
	if err != nil {
		return
	}
	aggMax, err := pConf.FieldInt(fieldAggregation, fieldAggMaxSize)
	if err != nil {
		return
	}
	if aggOn {
		// Kinesis counts the aggregate's partition key, "a", too.
		conf.aggMaxSize = min(aggMax, conf.maxRecordSize-1)
	}
	// Lint rules catch these in a config file; a config built in code gets
	// the same message here.
	for _, c := range []struct {
		bad  bool
		what string
	}{
		{conf.retry.maxRetries < 0, "max_retries must not be negative"},
		{records <= 0, "shard_limits.records_per_second must be greater than zero"},
		{bytes <= 0, "shard_limits.bytes_per_second must be greater than zero"},
		{conf.maxRecordSize <= 0 || conf.maxRecordSize > 10<<20, "max_record_size must be between 1 and 10485760 bytes"},
		{conf.shardRefreshPeriod <= 0, "shard_refresh_period must be greater than zero"},
		{aggMax < minAggMaxSize || aggMax > 10<<20, fmt.Sprintf("aggregation.max_size must be between %d and 10485760 bytes", minAggMaxSize)},
		{aggOn && aggMax > conf.maxRecordSize, "aggregation.max_size must not be above max_record_size"},
		{conf.retry.initialInterval < 0 || conf.retry.maxInterval < 0 || conf.retry.maxElapsed < 0, "backoff intervals must not be negative"},
	} {
		if c.bad {
			return conf, fmt.Errorf("%s", c.what)
		}
	}
	return conf, nil
}

// Register adds the output to env under name.
func Register(env *service.Environment, name string) error {
	return env.RegisterBatchOutput(name, Spec(),
		func(pConf *service.ParsedConfig, res *service.Resources) (service.BatchOutput, service.BatchPolicy, int, error) {
			maxInFlight, err := pConf.FieldMaxInFlight()
			if err != nil {
				return nil, service.BatchPolicy{}, 0, err
			}
			policy, err := pConf.FieldBatchPolicy(fieldBatching)
			if err != nil {
				return nil, service.BatchPolicy{}, 0, err
			}
			conf, err := writerConfigFromParsed(pConf)
			if err != nil {
				return nil, service.BatchPolicy{}, 0, err
			}
			sess, err := awssession.FromParsed(context.Background(), pConf)
			if err != nil {
				return nil, service.BatchPolicy{}, 0, err
			}
			return newKinesisWriter(conf, res, func() kinesisAPI {
				return kinesis.NewFromConfig(sess.Config)
			}), policy, maxInFlight, nil
		})
}

func backoffDefaultsStruct() backoff.ExponentialBackOff {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = time.Second
	b.MaxInterval = 5 * time.Second
	b.MaxElapsedTime = 30 * time.Second
	return *b
}
