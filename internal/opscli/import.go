package opscli

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	dtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/urfave/cli/v2"

	"github.com/benthos-kinesis/benthos-kinesis/checkpointer"
	"github.com/benthos-kinesis/benthos-kinesis/internal/kinesisapi"
	"github.com/benthos-kinesis/benthos-kinesis/internal/kpl"
)

// Attributes of a KCL lease (KCL 1.x, 2.x and 3.x use the same names).
const (
	kclLeaseKey    = "leaseKey"
	kclCheckpoint  = "checkpoint"
	kclSubSequence = "checkpointSubSequenceNumber"
	kclParents     = "parentShardIds"
	kclOwner       = "leaseOwner"
	kclPending     = "pendingCheckpoint"
)

// The KCL's sentinel checkpoints.
const (
	kclTrimHorizon = "TRIM_HORIZON"
	kclLatest      = "LATEST"
	kclAtTimestamp = "AT_TIMESTAMP"
	kclShardEnd    = "SHARD_END"
)

// kclLease is one lease of a KCL lease table.
type kclLease struct {
	Key        string
	Shard      string
	Checkpoint string
	Sub        uint64
	Parents    []string
	Owner      string
	Pending    string
}

// parseKCLLease reads one item of a KCL lease table.
func parseKCLLease(item map[string]dtypes.AttributeValue) (kclLease, error) {
	str := func(name string) (string, error) {
		v, ok := item[name]
		if !ok {
			return "", nil
		}
		s, isS := v.(*dtypes.AttributeValueMemberS)
		if !isS {
			return "", fmt.Errorf("attribute %s is not a string", name)
		}
		return s.Value, nil
	}
	var l kclLease
	var err error
	if l.Key, err = str(kclLeaseKey); err != nil || l.Key == "" {
		return kclLease{}, fmt.Errorf("an item without a string %s (not a KCL lease table?)", kclLeaseKey)
	}
	bad := func(err error) (kclLease, error) { return kclLease{}, fmt.Errorf("lease %s: %w", l.Key, err) }
	if l.Checkpoint, err = str(kclCheckpoint); err != nil {
		return bad(err)
	}
	if l.Owner, err = str(kclOwner); err != nil {
		return bad(err)
	}
	if l.Pending, err = str(kclPending); err != nil {
		return bad(err)
	}
	if v, ok := item[kclSubSequence]; ok {
		n, isN := v.(*dtypes.AttributeValueMemberN)
		if !isN {
			return bad(fmt.Errorf("attribute %s is not a number", kclSubSequence))
		}
		if l.Sub, err = strconv.ParseUint(n.Value, 10, 64); err != nil {
			return bad(fmt.Errorf("attribute %s: %w", kclSubSequence, err))
		}
	}
	if v, ok := item[kclParents]; ok {
		ss, isSS := v.(*dtypes.AttributeValueMemberSS)
		if !isSS {
			return bad(fmt.Errorf("attribute %s is not a string set", kclParents))
		}
		l.Parents = ss.Value
	}
	l.Shard = l.Key
	return l, nil
}

// kclStreamOf splits a multi-stream lease key "account:stream:creationEpoch:shardId"; a
// single-stream key (the shard id) gives ok false.
func kclStreamOf(key string) (account, stream, shard string, ok bool) {
	parts := strings.Split(key, ":")
	if len(parts) != 4 {
		return "", "", key, false
	}
	return parts[0], parts[1], parts[3], true
}

// matchesStream says whether a multi-stream lease's account and stream are the stream s (a name,
// or an ARN arn:aws:kinesis:region:account:stream/name).
func matchesStream(s kinesisapi.Stream, account, stream string) bool {
	if !s.IsARN() {
		return stream == s.String()
	}
	parts := strings.SplitN(s.String(), ":", 6)
	if len(parts) != 6 {
		return false
	}
	return parts[4] == account && strings.TrimPrefix(parts[5], "stream/") == stream
}

// readKCLLeases scans a KCL lease table (consistent reads, every page).
func readKCLLeases(ctx context.Context, api dynamoAPI, table string) ([]kclLease, error) {
	in := &dynamodb.ScanInput{TableName: aws.String(table), ConsistentRead: aws.Bool(true)}
	var leases []kclLease
	for {
		out, err := api.Scan(ctx, in)
		var notFound *dtypes.ResourceNotFoundException
		if errors.As(err, &notFound) {
			return nil, fmt.Errorf("KCL lease table %q does not exist (check --kcl-table: the KCL application's name, the region and the DynamoDB endpoint): %w", table, err)
		}
		if err != nil {
			return nil, fmt.Errorf("scan KCL lease table %q: %w", table, err)
		}
		for _, item := range out.Items {
			l, err := parseKCLLease(item)
			if err != nil {
				return nil, fmt.Errorf("KCL lease table %q: %w", table, err)
			}
			leases = append(leases, l)
		}
		if len(out.LastEvaluatedKey) == 0 {
			return leases, nil
		}
		in.ExclusiveStartKey = out.LastEvaluatedKey
	}
}

func (o options) leasesImportAction(c *cli.Context) error {
	name := c.Command.FullName()
	if !c.Bool("from-kcl") {
		return fmt.Errorf("%s: --from-kcl is required (the only source for now: a KCL application's lease table)", name)
	}
	kclTable := strings.TrimSpace(c.String("kcl-table"))
	if kclTable == "" {
		return fmt.Errorf("%s: --kcl-table is required (the KCL application's lease table, named after the application)", name)
	}
	var kclAt time.Time
	if v := strings.TrimSpace(c.String("kcl-timestamp")); v != "" {
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			return fmt.Errorf("%s: --kcl-timestamp must be RFC 3339: %w", name, err)
		}
		kclAt = t
	}
	s, err := oneStream(c)
	if err != nil {
		return err
	}
	ls, err := o.openLeases(c, "")
	if err != nil {
		return err
	}
	if kclTable == ls.table.Name() {
		return fmt.Errorf("%s: --kcl-table and --table are the same table", name)
	}
	all, err := readKCLLeases(c.Context, ls.dyn, kclTable)
	if err != nil {
		return err
	}
	views, err := ls.streamShards(c.Context, s)
	if err != nil {
		return err
	}
	var skipped []string
	leases := map[string]kclLease{}
	for _, l := range all {
		if account, stream, shard, multi := kclStreamOf(l.Key); multi {
			if !matchesStream(s, account, stream) {
				continue // another stream of a multi-stream application
			}
			l.Shard = shard
		}
		if !slices.ContainsFunc(views, func(v shardView) bool { return v.Listed && v.Shard == l.Shard }) {
			skipped = append(skipped, fmt.Sprintf("%s: KCL lease %s, not listed by the stream (aged out)", l.Shard, l.Key))
			continue
		}
		leases[l.Shard] = l
	}
	if len(leases) == 0 {
		return fmt.Errorf("%s: no lease of stream %s in KCL table %q (%d leases read): is it the right application?", name, s, kclTable, len(all))
	}
	ancestors := ancestorsOf(views, leases)
	now := time.Now()
	pace := o.pace
	if pace <= 0 {
		pace = getRecordsPace
	}
	var planned []shardView
	for _, v := range views {
		if _, ok := leases[v.Shard]; ok || ancestors[v.Shard] {
			planned = append(planned, v)
		} else if v.Listed {
			skipped = append(skipped, v.Shard+": no KCL lease (read by the inputs as a new shard: after its parents, from its oldest record)")
		}
	}
	live, err := ls.watch(c.Context, planned)
	if err != nil {
		return err
	}
	var changes []*change
	var problems []string
	for _, v := range planned {
		ch := &change{view: v, owner: v.Row.ClientID, alive: v.Row.ClientID != "" && live[v.Row.ClientID].Alive}
		l, ok := leases[v.Shard]
		if !ok {
			ch.placement = checkpointer.Placement{Finished: true}
			ch.note = "no KCL lease, ancestor of leased shards: done for the KCL"
			changes = append(changes, ch)
			continue
		}
		if err := o.placeKCL(c.Context, ls, s, l, kclAt, now, pace, ch); err != nil {
			problems = append(problems, err.Error())
			continue
		}
		changes = append(changes, ch)
	}
	if len(problems) > 0 {
		return fmt.Errorf("%s: %s", name, strings.Join(problems, "; "))
	}
	return o.runPlan(c, ls, s, changes, skipped, "Import KCL checkpoints into")
}

// placeKCL maps one KCL lease to a placement.
func (o options) placeKCL(ctx context.Context, ls *leaseSession, s kinesisapi.Stream, l kclLease, kclAt, now time.Time, pace time.Duration, ch *change) error {
	ch.note = "KCL " + orDash(l.Checkpoint)
	if l.Pending != "" {
		ch.note += fmt.Sprintf(" (pending checkpoint %s ignored)", l.Pending)
	}
	switch l.Checkpoint {
	case kclShardEnd:
		ch.placement = checkpointer.Placement{Finished: true}
	case kclTrimHorizon:
		ch.placement = checkpointer.Placement{StartAt: oldestStart}
	case kclLatest:
		// The KCL starts such a lease at the tip when a worker first reads it; the inputs start
		// at the time of the import (what came between the KCL's stop and now is not read,
		// as a KCL worker started now would not read it either).
		ch.placement = checkpointer.Placement{StartAt: now}
	case kclAtTimestamp:
		if kclAt.IsZero() {
			return fmt.Errorf("shard %s: the KCL lease is at AT_TIMESTAMP, whose time is in the KCL application's configuration: give it with --kcl-timestamp", l.Shard)
		}
		ch.placement = checkpointer.Placement{StartAt: kclAt}
	case "":
		return fmt.Errorf("shard %s: the KCL lease %s has no checkpoint", l.Shard, l.Key)
	default:
		if strings.Trim(l.Checkpoint, "0123456789") != "" {
			return fmt.Errorf("shard %s: unknown KCL checkpoint %q", l.Shard, l.Checkpoint)
		}
		p := checkpointer.Placement{SequenceNumber: l.Checkpoint}
		// The KCL's sub-sequence number is 0 both for a plain record and for the first user
		// record of a KPL aggregate: the record tells which.
		sub := l.Sub
		if sub > 0 {
			p.SubSequence = &sub
		} else {
			agg, err := isAggregate(ctx, ls.kin, s, l.Shard, l.Checkpoint, pace)
			if err != nil {
				return err
			}
			if agg {
				p.SubSequence = &sub
				ch.note += "/0 (a KPL aggregate: after its first user record)"
			}
		}
		ch.placement = p
	}
	return nil
}

// isAggregate reads the record seq and says whether it is a KPL aggregate; a record no longer
// in the stream is not (nothing of it can be read again anyway).
func isAggregate(ctx context.Context, api kinesisAPI, s kinesisapi.Stream, shard, seq string, pace time.Duration) (bool, error) {
	agg := false
	_, err := scan(ctx, api, s, shard, kinesis.GetShardIteratorInput{
		ShardIteratorType: types.ShardIteratorTypeAtSequenceNumber, StartingSequenceNumber: aws.String(seq),
	}, pace, func(r types.Record) bool {
		agg = aws.ToString(r.SequenceNumber) == seq && kpl.IsAggregated(r.Data)
		return true
	})
	var invalid *types.InvalidArgumentException
	if errors.As(err, &invalid) {
		return false, fmt.Errorf("shard %s: the KCL checkpoint %s is not a sequence number of the shard: %w", shard, seq, err)
	}
	return agg, err
}

// ancestorsOf returns the listed shards that are ancestors of a shard with a KCL lease: the KCL
// has read them to their end (and cleaned their leases up), or started after them (LATEST).
func ancestorsOf(views []shardView, leases map[string]kclLease) map[string]bool {
	parents := map[string][]string{}
	for _, v := range views {
		if v.Listed {
			parents[v.Shard] = v.Parents
		}
	}
	out := map[string]bool{}
	var walk func(id string)
	walk = func(id string) {
		for _, p := range parents[id] {
			if _, listed := parents[p]; !listed || out[p] {
				continue
			}
			if _, leased := leases[p]; !leased {
				out[p] = true
			}
			walk(p)
		}
	}
	for id := range leases {
		walk(id)
	}
	return out
}
