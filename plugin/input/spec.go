// Package input is the aws_kinesis input: it reads every shard of one or
// more Kinesis streams, spreads the shards over all running instances
// through leases in a DynamoDB table, and checkpoints a shard only up to the
// last record whose batch the pipeline has acknowledged.
//
// Register adds it to a Benthos environment under a name of the caller's
// choosing; the benthos-kinesis binary registers it as aws_kinesis. The
// lease protocol is described in docs/LEASES.md.
package input

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/benthos-kinesis/benthos-kinesis/internal/awssession"
)

const (
	fieldStreams          = "streams"
	fieldDynamoDB         = "dynamodb"
	fieldTable            = "table"
	fieldCreate           = "create"
	fieldBillingMode      = "billing_mode"
	fieldRCU              = "read_capacity_units"
	fieldWCU              = "write_capacity_units"
	fieldCheckpointLimit  = "checkpoint_limit"
	fieldDeaggregate      = "deaggregate"
	fieldCommitPeriod     = "commit_period"
	fieldStealGrace       = "steal_grace_period"
	fieldMaxInFlight      = "max_in_flight"
	fieldRebalancePeriod  = "rebalance_period"
	fieldLeasePeriod      = "lease_period"
	fieldStartFromOldest  = "start_from_oldest"
	fieldStartTimestamp   = "start_timestamp"
	fieldMaxMoves         = "max_moves_per_rebalance"
	fieldPollPeriod       = "poll_period"
	fieldPoll             = "poll"
	fieldPollIdleWait     = "idle_wait"
	fieldPollLimit        = "limit"
	fieldEFO              = "enhanced_fan_out"
	fieldEFOEnabled       = "enabled"
	fieldEFOConsumer      = "consumer_name"
	fieldEFOActivation    = "consumer_activation_timeout"
	fieldEFOResubscribe   = "max_resubscribe_interval"
	fieldBatching         = "batching"
	reservedWorkersStream = "__benthos_kinesis_workers__"

	// removedPollInterval is poll_period's name before Redpanda Connect 4.107
	// gave the built-in a field of the same meaning.
	removedPollInterval = "min_interval"
)

// defaultLeasePeriod is lease_period's default, which poll_period may not
// exceed; builtinLeasePeriod is the built-in's, which a config written for
// it relies on when it leaves lease_period out.
const (
	defaultLeasePeriod = "3.5s"
	builtinLeasePeriod = "30s"
)

// minResubscribeInterval is the least enhanced_fan_out.max_resubscribe_interval
// the built-in accepts.
const minResubscribeInterval = time.Second

// errEFONotSupported is why enhanced_fan_out.enabled: true fails, at lint and
// at start alike.
const errEFONotSupported = "enhanced_fan_out.enabled: reading with SubscribeToShard is not supported yet by this input; set enabled: false"

// What the lint rules of poll_period and enhanced_fan_out say;
// inputConfigFromParsed returns the same text for a config built in code,
// which is not linted.
const (
	msgPollPeriodNegative   = "poll_period must not be negative"
	msgPollPeriodAboveLease = "poll_period must not be above lease_period"
	// msgPollPeriodAboveDefaultLease follows msgPollPeriodAboveLease when
	// lease_period is this input's default (left out, or set to it: a
	// parsed config cannot tell them apart). A built-in config with a
	// poll_period between the two defaults fails only here; this says why
	// and what to do.
	msgPollPeriodAboveDefaultLease = "this input's default lease_period is " + defaultLeasePeriod + " (the built-in's is " + builtinLeasePeriod + "): set lease_period explicitly (e.g. lease_period: " + builtinLeasePeriod + ", at the cost of a slower take-over of a dead instance's shards) or a shorter poll_period"
	// msgPollPeriodAboveSetLease follows msgPollPeriodAboveLease when
	// lease_period is set to another value.
	msgPollPeriodAboveSetLease = "set a shorter poll_period or a longer lease_period"
	msgPollIntervalRemoved     = "poll.min_interval is now poll_period (Redpanda Connect 4.107's name for the least time between two GetRecords calls of a shard; 0s means this input's 200ms): move the value there"
	msgEFOConsumerRequired     = "enhanced_fan_out.consumer_name is required when enhanced_fan_out.enabled is true"
	msgEFOActivationPositive   = "enhanced_fan_out.consumer_activation_timeout must be greater than zero"
	msgEFOResubscribeMin       = "enhanced_fan_out.max_resubscribe_interval must be at least 1s"
)

// durationLint is a lint rule for a duration field: an unparsable value is
// named as such, and bad(d) (bloblang over $d, in nanoseconds) says msg.
func durationLint(field, bad, msg string) string {
	return fmt.Sprintf(`let d = this.parse_duration().catch(null)
root = if $d == null { [%q + ": " + this.string() + " is not a duration"] } else if %s { [%q] }`, field, bad, msg)
}

// parsableDurationLint is a lint rule for a duration field whose bounds
// depend on another field (checked by the parent object's rule): only an
// unparsable value is reported here.
func parsableDurationLint(field string) string {
	return fmt.Sprintf(`root = if this.parse_duration().catch(null) == null { [%q + ": " + this.string() + " is not a duration"] }`, field)
}

// mustDuration parses a duration constant of this file.
func mustDuration(s string) time.Duration {
	d, err := time.ParseDuration(s)
	if err != nil {
		panic(fmt.Sprintf("duration constant %q: %v", s, err))
	}
	return d
}

// pollAboveLease is the error for a poll_period above the lease period.
// A lease period at this input's default, shorter than the built-in's, is
// most likely a built-in config that leaves lease_period out, and the error
// says so.
func pollAboveLease(poll, lease time.Duration) error {
	hint := msgPollPeriodAboveSetLease
	if lease == mustDuration(defaultLeasePeriod) {
		hint = msgPollPeriodAboveDefaultLease
	}
	return fmt.Errorf("%s (%v > %v): %s", msgPollPeriodAboveLease, poll, lease, hint)
}

// Spec is the input's config spec: every field of Redpanda Connect's
// built-in aws_kinesis input with the same meaning, and what the lease
// protocol adds.
func Spec() *service.ConfigSpec {
	return service.NewConfigSpec().
		Stable().
		// One rule for the spec (Benthos keeps only the last one given):
		// checks of a missing list, which passes Benthos' own lint, and of
		// two fields against each other. An unparsable duration is reported
		// by the field's own rule.
		LintRule(fmt.Sprintf(`let poll = (this.%s | "0s").parse_duration().catch(0)
let lease = (this.%s | %q).parse_duration().catch(0)
root = [
  if (this.%s | []).length() == 0 { "field streams is required: at least one stream to read" } else { null },
  if $lease > 0 && $poll > $lease { %q + " (" + (this.%s | "0s").string() + " > " + (this.%s | %q).string() + "): " + if $lease == %d { %q } else { %q } } else { null },
].filter(m -> m != null)`,
			fieldPollPeriod, fieldLeasePeriod, defaultLeasePeriod, fieldStreams,
			msgPollPeriodAboveLease, fieldPollPeriod, fieldLeasePeriod, defaultLeasePeriod,
			mustDuration(defaultLeasePeriod).Nanoseconds(), msgPollPeriodAboveDefaultLease, msgPollPeriodAboveSetLease)).
		Categories("Services", "AWS").
		Summary("Reads one or more Kinesis data streams, sharing their shards among all running instances, and checkpoints only what the pipeline has acknowledged.").
		Description(`
A drop-in replacement for the built-in `+"`aws_kinesis`"+` input: every field of it is accepted with the same meaning, and it
resumes from a checkpoint table written by the built-in (stop the old fleet first).

The shards of all configured streams are spread over every running instance through leases in the DynamoDB table: each
instance takes its fair share, a new instance gets its share through graceful hand-offs (no record delivered twice), and
the shards of an instance that dies are read again by the others within `+"`lease_period`"+`. A shard's checkpoint only
moves past a record once the batch holding it has been acknowledged downstream.

When a stream is resharded, a child shard is read only after its parents have been read to their end, so records keep
their order per partition key and nothing written before the split or merge is lost.

== Metadata

Each message has `+"`kinesis_stream`"+`, `+"`kinesis_shard`"+`, `+"`kinesis_partition_key`"+`, `+"`kinesis_sequence_number`"+`,
`+"`kinesis_arrival_timestamp`"+` (RFC 3339) and `+"`kinesis_millis_behind`"+` (the shard's lag when it was read).

== Table schema

A table with a string HASH key `+"`StreamID`"+` and a string RANGE key `+"`ShardID`"+`, the same as the built-in's. Set
`+"`dynamodb.create: true`"+` to have it created.`).
		Fields(
			service.NewStringListField(fieldStreams).
				Description("The streams to read, by name or ARN. An entry may list several streams separated by commas. `stream:shard` reads just that shard, without balancing.").
				Examples([]any{"foo"}, []any{"arn:aws:kinesis:eu-west-1:111122223333:stream/my-stream"}, []any{"foo:shardId-000000000000"}),
			service.NewObjectField(fieldDynamoDB, append([]*service.ConfigField{
				service.NewStringField(fieldTable).
					Description("The DynamoDB table that holds the leases and checkpoints (required).").
					Example("kinesis_checkpoints").
					Default("").
					LintRule(`root = if this == "" { ["dynamodb.table is required: it holds the leases and checkpoints"] }`),
				service.NewBoolField(fieldCreate).
					Description("Create the table if it does not exist.").
					Default(false),
				service.NewStringEnumField(fieldBillingMode, "PROVISIONED", "PAY_PER_REQUEST").
					Description("The billing mode of a created table.").
					Default("PAY_PER_REQUEST").
					Advanced(),
				service.NewIntField(fieldRCU).
					Description("The read capacity of a created table with billing mode PROVISIONED.").
					Default(0).
					Advanced(),
				service.NewIntField(fieldWCU).
					Description("The write capacity of a created table with billing mode PROVISIONED.").
					Default(0).
					Advanced(),
				service.NewIntField(fieldMaxInFlight).
					Description("The most writes to the table (checkpoints, claims, hand-overs, releases) made at once. Each has a timeout of a third of `lease_period`; the heartbeat has its own and never waits behind them.").
					Default(32).
					LintRule(`root = if this < 1 { ["dynamodb.max_in_flight must be at least 1"] }`).
					Advanced(),
			}, awssession.Fields()...)...).
				Description("The DynamoDB table of leases and checkpoints, and how to reach it. Without its own region, endpoint or credentials the input's are used."),
			service.NewIntField(fieldCheckpointLimit).
				Description("The most messages of one shard delivered and not yet acknowledged; the shard's reader waits beyond that. 1 processes a shard in lock-step.").
				Default(1024).
				LintRule(`root = if this < 1 { ["checkpoint_limit must be at least 1"] }`),
			service.NewAutoRetryNacksToggleField(),
			service.NewBoolField(fieldDeaggregate).
				Description("Split records written in the aggregated format of the Kinesis Producer Library (KPL) into their user records, as the KCL does: one message each, with its own partition key, `kinesis_explicit_hash_key` when it has one, and `kinesis_sub_sequence_number`; checkpoints then point at the last acknowledged user record (the table's `SubSequence`), so a restart or a hand-off inside an aggregate resumes at the next user record. Plain records are delivered as they are. An aggregate whose checksum or encoding is wrong is delivered as one plain record with `kinesis_kpl_error` saying why (counted in `kinesis_input_kpl_malformed`). After a reshard, user records of an aggregate whose hash key is outside the shard's range are skipped (counted in `kinesis_input_kpl_out_of_range`): the KPL puts them again to their own shard. The KCL drops the whole aggregate then, the user records inside the range too; this input delivers those. `false` delivers every record as it is, like the built-in.").
				Default(true).
				Advanced(),
			service.NewDurationField(fieldCommitPeriod).
				Description("How often checkpoints that moved are written. Checkpoints are also written on hand-off, at a shard's end and at shutdown.").
				Default("5s"),
			service.NewDurationField(fieldStealGrace).
				Description("How long the owner of a shard may take to hand it over gracefully (stop reading, wait for its acknowledgements, write the final checkpoint) before the instance that asked for it takes it anyway. The built-in's default is 2s; ours is longer so that slow pipelines still hand over without duplicates.").
				Default("10s").
				Advanced(),
			service.NewDurationField(fieldRebalancePeriod).
				Description("How often an instance compares its share of the shards with the fleet's and asks for more if it is short. Free shards and shards of dead instances are taken at every heartbeat regardless. The built-in's default is 30s.").
				Default("5s").
				Advanced(),
			service.NewDurationField(fieldLeasePeriod).
				Description("How long an instance's heartbeat may stay unchanged before the others take its shards. Heartbeats are written every third of it, one item per instance, and an instance that cannot write one for two thirds of it stops delivering until it can. The default reads a dead instance's shards again within 5 seconds (measured 3.7-4.4 s); a longer period rides out longer DynamoDB slowdowns and process stalls without pausing or handing shards over, at the cost of a slower take-over (6s: about 7-8 s). The built-in's default is 30s.").
				Default(defaultLeasePeriod).
				Advanced(),
			service.NewBoolField(fieldStartFromOldest).
				Description("Without a checkpoint, start from the oldest record of a shard (true) or from the newest (false). Child shards of a split or merge always start from their oldest record, so nothing written to them is skipped.").
				Default(true),
			service.NewStringField(fieldStartTimestamp).
				Description("Without a checkpoint, start from the first record written at or after this time (RFC 3339). Overrides start_from_oldest. Empty means start_from_oldest decides.").
				Example("2026-01-31T12:00:00Z").
				Default("").
				Advanced(),
			service.NewIntField(fieldMaxMoves).
				Description("The most shards one instance asks other live instances to hand over in one rebalance. Free shards and the shards of dead instances are taken up to the fair share at once.").
				Default(2).
				LintRule(`root = if this < 1 { ["max_moves_per_rebalance must be at least 1"] }`).
				Advanced(),
			service.NewDurationField(fieldPollPeriod).
				Description("The least time between two GetRecords calls of one shard, to leave room for other consumers of the stream: Kinesis allows 5 calls per second per shard, shared by all of them. `0s` keeps this input's own pacing, at most 5 calls per second per shard (200ms); a shorter period than that is taken as it is (and Kinesis throttles it on a real stream). Values above `lease_period` are rejected: mind that this input's `lease_period` defaults to 3.5s, the built-in's to 30s. A shard at its tip waits at least this long too, however short `poll.idle_wait` is. Called `poll.min_interval` before Redpanda Connect 4.107 gave the built-in this field.").
				Default("0s").
				Example("500ms").
				LintRule(durationLint(fieldPollPeriod, "$d < 0", msgPollPeriodNegative)).
				Advanced(),
			service.NewObjectField(fieldPoll,
				service.NewDurationField(fieldPollIdleWait).
					Description("The longest pause after a call at the tip of a shard that returned nothing new, unless `poll_period` is longer. The readers at the tip call together, on a shared beat of this period (one wake-up for up to 64 shards), so a pause may be shorter.").
					Default("1s"),
				service.NewIntField(fieldPollLimit).
					Description("The most records one GetRecords call returns (at most 10,000).").
					Default(10000).
					LintRule(`root = if this < 1 || this > 10000 { ["poll.limit must be between 1 and 10000"] }`),
			).
				Description("How shards are polled at their tip, and how much one call returns. The least time between two calls is `poll_period`.").
				// Benthos says the field is not recognised; this says where it went.
				LintRule(fmt.Sprintf(`root = if this.%s != null { [%q] }`, removedPollInterval, msgPollIntervalRemoved)).
				Advanced(),
			service.NewObjectField(fieldEFO,
				service.NewBoolField(fieldEFOEnabled).
					Description("Read with enhanced fan-out (SubscribeToShard, a dedicated 2 MB/s per shard for this consumer) instead of GetRecords. Not supported yet by this input: `true` fails lint and start. Accepted so that a config of the built-in lints.").
					Default(false).
					LintRule(fmt.Sprintf(`root = if this { [%q] }`, errEFONotSupported)),
				service.NewStringField(fieldEFOConsumer).
					Description("The name of the stream consumer registered for enhanced fan-out. Required when `enabled` is true.").
					Example("my-app").
					Default(""),
				service.NewDurationField(fieldEFOActivation).
					Description("How long to wait for a newly registered stream consumer to become active (greater than zero when `enabled` is true).").
					Default("1m").
					LintRule(parsableDurationLint(fieldEFO+"."+fieldEFOActivation)),
				service.NewDurationField(fieldEFOResubscribe).
					Description("The longest wait before subscribing to a shard again after a subscription ends (at least 1s when `enabled` is true).").
					Default("30s").
					LintRule(parsableDurationLint(fieldEFO+"."+fieldEFOResubscribe)),
			).
				Description("Enhanced fan-out, as the built-in's (Redpanda Connect 4.107). Reading with SubscribeToShard is not built yet: only `enabled: false` is accepted.").
				// The built-in checks the other fields only when enabled is
				// true, so a config of it that sets them while fan-out is off
				// lints clean here too. An unparsable duration is reported by
				// the field's own rule, whatever enabled says.
				LintRule(fmt.Sprintf(`let activation = (this.%s | "1m").parse_duration().catch(null)
let resubscribe = (this.%s | "30s").parse_duration().catch(null)
root = if (this.%s | false) == true { [
  if (this.%s | "") == "" { %q } else { null },
  if $activation != null && $activation <= 0 { %q } else { null },
  if $resubscribe != null && $resubscribe < %d { %q } else { null },
].filter(m -> m != null) }`,
					fieldEFOActivation, fieldEFOResubscribe, fieldEFOEnabled,
					fieldEFOConsumer, msgEFOConsumerRequired,
					msgEFOActivationPositive,
					minResubscribeInterval.Nanoseconds(), msgEFOResubscribeMin)).
				Advanced(),
		).
		Fields(awssession.Fields()...).
		Field(service.NewBatchPolicyField(fieldBatching))
}

// streamRef is one configured stream: its id as configured (also its
// StreamID in the table) and, for explicit shards, the shards to read.
type streamRef struct {
	id     string
	shards []string
}

// parseStreams splits the streams field as the built-in does: entries may
// hold several comma-separated streams, `stream:shard` names one shard.
func parseStreams(entries []string) ([]streamRef, error) {
	var refs []streamRef
	index := map[string]int{}
	balanced, explicit := false, false
	for _, entry := range entries {
		for _, part := range strings.Split(entry, ",") {
			part = strings.TrimSpace(part)
			if part == "" {
				continue
			}
			id, shard, err := splitStreamShard(part)
			if err != nil {
				return nil, err
			}
			if id == reservedWorkersStream {
				return nil, fmt.Errorf("stream name %q is reserved for the lease table's worker rows", id)
			}
			if shard == "" {
				balanced = true
			} else {
				explicit = true
			}
			i, ok := index[id]
			if !ok {
				i = len(refs)
				index[id] = i
				refs = append(refs, streamRef{id: id})
			}
			if shard != "" {
				refs[i].shards = append(refs[i].shards, shard)
			}
		}
	}
	if balanced && explicit {
		return nil, fmt.Errorf("streams: balanced streams and explicit `stream:shard` entries cannot be mixed in one input")
	}
	if len(refs) == 0 {
		return nil, fmt.Errorf("streams: at least one stream is required")
	}
	return refs, nil
}

// splitStreamShard separates `stream:shard`. An ARN holds colons itself, so
// only a colon after its last slash starts a shard.
func splitStreamShard(s string) (id, shard string, err error) {
	prefix := ""
	if i := strings.LastIndex(s, "/"); i > 0 {
		prefix, s = s[:i], s[i:]
	}
	parts := strings.Split(s, ":")
	if len(parts) > 2 {
		return "", "", fmt.Errorf("stream %q is invalid: name one shard per entry, e.g. `foo:0,foo:1`, not `foo:0:1`", prefix+s)
	}
	id = prefix + strings.TrimSpace(parts[0])
	if len(parts) == 2 {
		shard = strings.TrimSpace(parts[1])
		if shard == "" {
			return "", "", fmt.Errorf("stream %q names an empty shard", prefix+s)
		}
	}
	return id, shard, nil
}

// inputConfig is the parsed config of one input.
type inputConfig struct {
	streams          []streamRef
	table            string
	create           bool
	billingMode      string
	rcu, wcu         int64
	checkpointLimit  int
	deaggregate      bool
	commitPeriod     time.Duration
	stealGracePeriod time.Duration
	rebalancePeriod  time.Duration
	leasePeriod      time.Duration
	startFromOldest  bool
	startTimestamp   *time.Time
	maxMoves         int
	pace             pacing
	pollLimit        int32
	// maxWritesInFlight bounds the lease-table writes made at once.
	maxWritesInFlight int
}

func inputConfigFromParsed(pConf *service.ParsedConfig) (conf inputConfig, err error) {
	entries, err := pConf.FieldStringList(fieldStreams)
	if err != nil {
		return conf, err
	}
	if conf.streams, err = parseStreams(entries); err != nil {
		return conf, err
	}
	db := pConf.Namespace(fieldDynamoDB)
	if conf.table, err = db.FieldString(fieldTable); err != nil {
		return conf, err
	}
	if conf.create, err = db.FieldBool(fieldCreate); err != nil {
		return conf, err
	}
	if conf.billingMode, err = db.FieldString(fieldBillingMode); err != nil {
		return conf, err
	}
	rcu, err := db.FieldInt(fieldRCU)
	if err != nil {
		return conf, err
	}
	wcu, err := db.FieldInt(fieldWCU)
	if err != nil {
		return conf, err
	}
	conf.rcu, conf.wcu = int64(rcu), int64(wcu)
	if conf.maxWritesInFlight, err = db.FieldInt(fieldMaxInFlight); err != nil {
		return conf, err
	}
	if conf.maxWritesInFlight < 1 {
		return conf, fmt.Errorf("%s.%s must be at least 1", fieldDynamoDB, fieldMaxInFlight)
	}
	if conf.checkpointLimit, err = pConf.FieldInt(fieldCheckpointLimit); err != nil {
		return conf, err
	}
	if conf.deaggregate, err = pConf.FieldBool(fieldDeaggregate); err != nil {
		return conf, err
	}
	durations := []struct {
		field string
		dst   *time.Duration
	}{
		{fieldCommitPeriod, &conf.commitPeriod},
		{fieldStealGrace, &conf.stealGracePeriod},
		{fieldRebalancePeriod, &conf.rebalancePeriod},
		{fieldLeasePeriod, &conf.leasePeriod},
	}
	for _, d := range durations {
		if *d.dst, err = pConf.FieldDuration(d.field); err != nil {
			return conf, err
		}
		if *d.dst <= 0 {
			return conf, fmt.Errorf("%s must be greater than zero", d.field)
		}
	}
	if conf.startFromOldest, err = pConf.FieldBool(fieldStartFromOldest); err != nil {
		return conf, err
	}
	if pConf.Contains(fieldStartTimestamp) {
		s, err := pConf.FieldString(fieldStartTimestamp)
		if err != nil {
			return conf, err
		}
		if s != "" {
			ts, err := time.Parse(time.RFC3339Nano, s)
			if err != nil {
				return conf, fmt.Errorf("%s: %q is not an RFC 3339 time: %w", fieldStartTimestamp, s, err)
			}
			conf.startTimestamp = &ts
		}
	}
	if conf.maxMoves, err = pConf.FieldInt(fieldMaxMoves); err != nil {
		return conf, err
	}
	conf.pace = defaultPacing
	if pConf.Contains(fieldPoll, removedPollInterval) {
		return conf, fmt.Errorf("%s", msgPollIntervalRemoved)
	}
	pollPeriod, err := pConf.FieldDuration(fieldPollPeriod)
	if err != nil {
		return conf, err
	}
	switch {
	case pollPeriod < 0:
		return conf, fmt.Errorf("%s", msgPollPeriodNegative)
	case pollPeriod > conf.leasePeriod:
		return conf, pollAboveLease(pollPeriod, conf.leasePeriod)
	case pollPeriod > 0:
		conf.pace.minInterval = pollPeriod
	}
	if err := checkEnhancedFanOut(pConf.Namespace(fieldEFO)); err != nil {
		return conf, err
	}
	if conf.pace.idleWait, err = pConf.FieldDuration(fieldPoll, fieldPollIdleWait); err != nil {
		return conf, err
	}
	limit, err := pConf.FieldInt(fieldPoll, fieldPollLimit)
	if err != nil {
		return conf, err
	}
	conf.pollLimit = int32(limit)
	switch {
	case conf.checkpointLimit < 1:
		return conf, fmt.Errorf("checkpoint_limit must be at least 1")
	case conf.maxMoves < 1:
		return conf, fmt.Errorf("max_moves_per_rebalance must be at least 1")
	case limit < 1 || limit > 10000:
		return conf, fmt.Errorf("poll.limit must be between 1 and 10000")
	case conf.table == "":
		return conf, fmt.Errorf("dynamodb.table is required: it holds the leases and checkpoints")
	}
	return conf, nil
}

// checkEnhancedFanOut applies enhanced_fan_out's lint rules to a config built
// in code, and refuses enabled: true, which is not built. As in the built-in,
// the other fields are checked only when enabled is true; their messages then
// follow the refusal, so that the user sees all there is to fix.
func checkEnhancedFanOut(efo *service.ParsedConfig) error {
	enabled, err := efo.FieldBool(fieldEFOEnabled)
	if err != nil {
		return err
	}
	name, err := efo.FieldString(fieldEFOConsumer)
	if err != nil {
		return err
	}
	activation, err := efo.FieldDuration(fieldEFOActivation)
	if err != nil {
		return err
	}
	resubscribe, err := efo.FieldDuration(fieldEFOResubscribe)
	if err != nil {
		return err
	}
	if !enabled {
		return nil
	}
	msgs := []string{errEFONotSupported}
	if name == "" {
		msgs = append(msgs, msgEFOConsumerRequired)
	}
	if activation <= 0 {
		msgs = append(msgs, msgEFOActivationPositive)
	}
	if resubscribe < minResubscribeInterval {
		msgs = append(msgs, msgEFOResubscribeMin)
	}
	return errors.New(strings.Join(msgs, "; "))
}
