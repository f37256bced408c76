package checkpointer

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
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// Lease is one shard row as read (LEASES.md, "Rows"). The zero Lease with Stream and Shard set
// stands for a shard that has no row yet: pass it to Claim.
type Lease struct {
	Stream string // StreamID
	Shard  string // ShardID
	// Exists is true for a row read from the table, false for a shard with no row.
	Exists bool
	// SequenceNumber is the checkpoint: reading resumes after it. Empty: never checkpointed.
	SequenceNumber string
	// SubSequence is the last acknowledged user record inside the (KPL aggregated) record at
	// SequenceNumber; nil when absent (the whole record).
	SubSequence *uint64
	// ClientID is the owning worker; empty: free.
	ClientID string
	// LeaseTimeout is informational (never read for liveness); zero when absent or not RFC 3339.
	LeaseTimeout time.Time
	// Epoch is the fencing token; 0 when absent, and HasEpoch tells the two apart: a claim's
	// condition is Epoch = :e when the row had one, attribute_not_exists(Epoch) when not.
	Epoch    int64
	HasEpoch bool
	// Finished: the shard was read to its end and everything acknowledged (SHARD_END).
	Finished bool
	// HandoffTo is the worker that asked the owner for the shard; HandoffEpoch the epoch it asked
	// against. Empty / 0 when there is no request.
	HandoffTo    string
	HandoffEpoch int64
	// StartAt is where a shard without a checkpoint starts for every owner
	// (set by the first, SetStart): without it each new owner of a shard
	// read from its tip would start at a later tip and skip what came
	// between. Zero when absent.
	StartAt time.Time
}

// Free reports whether the shard has no owner.
func (l Lease) Free() bool { return l.ClientID == "" }

// String describes the row for errors and logs.
func (l Lease) String() string {
	if !l.Exists {
		return fmt.Sprintf("shard %s of %s: no row", l.Shard, l.Stream)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "shard %s of %s: ", l.Shard, l.Stream)
	if l.ClientID == "" {
		b.WriteString("free")
	} else {
		fmt.Fprintf(&b, "owner %q", l.ClientID)
	}
	if l.HasEpoch {
		fmt.Fprintf(&b, ", epoch %d", l.Epoch)
	} else {
		b.WriteString(", no epoch")
	}
	if l.SequenceNumber != "" {
		fmt.Fprintf(&b, ", checkpoint %s", l.SequenceNumber)
		if l.SubSequence != nil {
			fmt.Fprintf(&b, "/%d", *l.SubSequence)
		}
	}
	if l.HandoffTo != "" {
		fmt.Fprintf(&b, ", hand-off requested by %q at epoch %d", l.HandoffTo, l.HandoffEpoch)
	}
	if l.Finished {
		b.WriteString(", finished")
	}
	return b.String()
}

// WorkerRow is one worker's heartbeat row.
type WorkerRow struct {
	ID        string    // ShardID of the row: the worker id
	Heartbeat int64     // the counter the worker bumps every heartbeat period
	Streams   []string  // informational
	Started   time.Time // informational; zero when absent or not RFC 3339
	// Name is the worker's human-readable name ("host:pid", informational); empty in rows
	// written before it existed.
	Name string
	// LeasePeriod is the lease period the worker runs with (AttrLeasePeriodMs); 0 in rows
	// written before it existed.
	LeasePeriod time.Duration
}

// Leases returns every shard row of stream (the partition StreamID = stream), read with
// consistent, paginated Queries, in ShardID order.
func (t *Table) Leases(ctx context.Context, stream string) ([]Lease, error) {
	if stream == "" || stream == WorkersPartition {
		return nil, fmt.Errorf("read leases from dynamodb table %q: invalid stream %q", t.name, stream)
	}
	var leases []Lease
	err := t.query(ctx, stream, func(item map[string]types.AttributeValue) error {
		l, err := parseLease(item)
		if err != nil {
			return err
		}
		leases = append(leases, l)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read leases of %s from dynamodb table %q: %w", stream, t.name, err)
	}
	return leases, nil
}

// Workers returns every worker row (the partition StreamID = WorkersPartition).
func (t *Table) Workers(ctx context.Context) ([]WorkerRow, error) {
	var workers []WorkerRow
	err := t.query(ctx, WorkersPartition, func(item map[string]types.AttributeValue) error {
		w, err := parseWorker(item)
		if err != nil {
			return err
		}
		workers = append(workers, w)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read worker rows from dynamodb table %q: %w", t.name, err)
	}
	return workers, nil
}

// query runs a consistent Query on one partition, page after page.
func (t *Table) query(ctx context.Context, partition string, each func(map[string]types.AttributeValue) error) error {
	in := &dynamodb.QueryInput{
		TableName:                 aws.String(t.name),
		KeyConditionExpression:    aws.String("#pk = :pk"),
		ExpressionAttributeNames:  map[string]string{"#pk": AttrStreamID},
		ExpressionAttributeValues: map[string]types.AttributeValue{":pk": &types.AttributeValueMemberS{Value: partition}},
		ConsistentRead:            aws.Bool(true),
	}
	if t.pageLimit > 0 {
		in.Limit = aws.Int32(t.pageLimit)
	}
	for {
		out, err := t.api.Query(ctx, in)
		if err != nil {
			return err
		}
		for _, item := range out.Items {
			if err := each(item); err != nil {
				return err
			}
		}
		if len(out.LastEvaluatedKey) == 0 {
			return nil
		}
		in.ExclusiveStartKey = out.LastEvaluatedKey
	}
}

// Get reads one shard row with a consistent GetItem; a shard with no row is a Lease with Exists
// false (ready to pass to Claim).
func (t *Table) Get(ctx context.Context, stream, shard string) (Lease, error) {
	if err := checkShard(stream, shard); err != nil {
		return Lease{}, fmt.Errorf("read shard %s of %s: %w", shard, stream, err)
	}
	l, err := t.get(ctx, stream, shard)
	if err != nil {
		return Lease{}, fmt.Errorf("read shard %s of %s from dynamodb table %q: %w", shard, stream, t.name, err)
	}
	return l, nil
}

// get reads one shard row with a consistent GetItem; a missing row is a Lease with Exists false.
func (t *Table) get(ctx context.Context, stream, shard string) (Lease, error) {
	out, err := t.api.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:      aws.String(t.name),
		Key:            key(stream, shard),
		ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return Lease{}, err
	}
	if len(out.Item) == 0 {
		return Lease{Stream: stream, Shard: shard}, nil
	}
	return parseLease(out.Item)
}

// Heartbeat writes this worker's row: Heartbeat = counter, Streams (informational), Started (the
// time the Table was made), WorkerName (informational, see WithWorkerName), LeasePeriodMs (the
// WithLeasePeriod of the handle). The caller bumps counter every heartbeat period; observers
// judge liveness by seeing it change.
func (t *Table) Heartbeat(ctx context.Context, counter int64, streams []string) error {
	item := map[string]types.AttributeValue{
		AttrStreamID:  &types.AttributeValueMemberS{Value: WorkersPartition},
		AttrShardID:   &types.AttributeValueMemberS{Value: t.worker},
		AttrHeartbeat: numberAttr(counter),
		AttrStarted:   &types.AttributeValueMemberS{Value: t.started.UTC().Format(time.RFC3339Nano)},
	}
	if t.workerName != "" {
		item[AttrWorkerName] = &types.AttributeValueMemberS{Value: t.workerName}
	}
	item[AttrLeasePeriodMs] = numberAttr(t.leasePeriod.Milliseconds())
	// A string set can be neither empty nor hold duplicates.
	ss := slices.Clone(streams)
	slices.Sort(ss)
	ss = slices.Compact(ss)
	if len(ss) > 0 && ss[0] == "" {
		ss = ss[1:]
	}
	if len(ss) > 0 {
		item[AttrStreams] = &types.AttributeValueMemberSS{Value: ss}
	}
	if _, err := t.api.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(t.name), Item: item}); err != nil {
		return fmt.Errorf("heartbeat of worker %s in dynamodb table %q: %w", t.worker, t.name, err)
	}
	return nil
}

// RemoveWorker deletes this worker's row (on shutdown, after its leases are released), so that
// observers need not wait a lease period to count it out.
func (t *Table) RemoveWorker(ctx context.Context) error {
	if _, err := t.api.DeleteItem(ctx, &dynamodb.DeleteItemInput{
		TableName: aws.String(t.name),
		Key:       key(WorkersPartition, t.worker),
	}); err != nil {
		return fmt.Errorf("remove worker row %s from dynamodb table %q: %w", t.worker, t.name, err)
	}
	return nil
}

// RemoveDeadWorker deletes the row of another worker whose heartbeat has
// stood still (at counter) for long enough that every observer counts it
// out, so that a worker started later need not watch it for a lease period.
// The condition keeps a row whose worker came back (its counter moved).
func (t *Table) RemoveDeadWorker(ctx context.Context, id string, counter int64) error {
	if _, err := t.api.DeleteItem(ctx, &dynamodb.DeleteItemInput{
		TableName:                 aws.String(t.name),
		Key:                       key(WorkersPartition, id),
		ConditionExpression:       aws.String("#hb = :hb"),
		ExpressionAttributeNames:  map[string]string{"#hb": AttrHeartbeat},
		ExpressionAttributeValues: map[string]types.AttributeValue{":hb": numberAttr(counter)},
	}); err != nil {
		var failed *types.ConditionalCheckFailedException
		if errors.As(err, &failed) {
			return nil // it beat again, or another worker removed it first
		}
		return fmt.Errorf("remove dead worker row %s from dynamodb table %q: %w", id, t.name, err)
	}
	return nil
}

func numberAttr[T int64 | uint64](n T) *types.AttributeValueMemberN {
	return &types.AttributeValueMemberN{Value: fmt.Sprint(n)}
}

// parseLease reads a shard row. Attributes of an unexpected type are an error (the row is not
// one this protocol wrote, and must not be overwritten blindly); an unparsable LeaseTimeout is
// not (informational).
func parseLease(item map[string]types.AttributeValue) (Lease, error) {
	l := Lease{Exists: true}
	var err error
	if l.Stream, _, err = str(item, AttrStreamID); err != nil {
		return Lease{}, err
	}
	if l.Shard, _, err = str(item, AttrShardID); err != nil {
		return Lease{}, err
	}
	bad := func(err error) (Lease, error) {
		return Lease{}, fmt.Errorf("row of shard %s of %s: %w", l.Shard, l.Stream, err)
	}
	if l.SequenceNumber, _, err = str(item, AttrSequenceNumber); err != nil {
		return bad(err)
	}
	if l.ClientID, _, err = str(item, AttrClientID); err != nil {
		return bad(err)
	}
	if l.HandoffTo, _, err = str(item, AttrHandoffTo); err != nil {
		return bad(err)
	}
	if s, ok, err := str(item, AttrLeaseTimeout); err != nil {
		return bad(err)
	} else if ok {
		if ts, err := time.Parse(time.RFC3339Nano, s); err == nil {
			l.LeaseTimeout = ts
		}
	}
	if s, ok, err := str(item, AttrStartAt); err != nil {
		return bad(err)
	} else if ok {
		ts, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return bad(fmt.Errorf("%s: %w", AttrStartAt, err))
		}
		l.StartAt = ts
	}
	if l.Epoch, l.HasEpoch, err = integer(item, AttrEpoch); err != nil {
		return bad(err)
	}
	if l.HandoffEpoch, _, err = integer(item, AttrHandoffEpoch); err != nil {
		return bad(err)
	}
	if v, ok := item[AttrSubSequence]; ok {
		n, isN := v.(*types.AttributeValueMemberN)
		if !isN {
			return bad(fmt.Errorf("attribute %s is %s, want N", AttrSubSequence, typeName(v)))
		}
		u, err := strconv.ParseUint(n.Value, 10, 64)
		if err != nil {
			return bad(fmt.Errorf("attribute %s: %w", AttrSubSequence, err))
		}
		l.SubSequence = &u
	}
	if v, ok := item[AttrFinished]; ok {
		b, isB := v.(*types.AttributeValueMemberBOOL)
		if !isB {
			return bad(fmt.Errorf("attribute %s is %s, want BOOL", AttrFinished, typeName(v)))
		}
		l.Finished = b.Value
	}
	return l, nil
}

func parseWorker(item map[string]types.AttributeValue) (WorkerRow, error) {
	var w WorkerRow
	var err error
	if w.ID, _, err = str(item, AttrShardID); err != nil {
		return WorkerRow{}, err
	}
	bad := func(err error) (WorkerRow, error) {
		return WorkerRow{}, fmt.Errorf("row of worker %s: %w", w.ID, err)
	}
	if w.Heartbeat, _, err = integer(item, AttrHeartbeat); err != nil {
		return bad(err)
	}
	if v, ok := item[AttrStreams]; ok {
		ss, isSS := v.(*types.AttributeValueMemberSS)
		if !isSS {
			return bad(fmt.Errorf("attribute %s is %s, want SS", AttrStreams, typeName(v)))
		}
		w.Streams = ss.Value
	}
	if s, ok, err := str(item, AttrStarted); err != nil {
		return bad(err)
	} else if ok {
		if ts, err := time.Parse(time.RFC3339Nano, s); err == nil {
			w.Started = ts
		}
	}
	if w.Name, _, err = str(item, AttrWorkerName); err != nil {
		return bad(err)
	}
	ms, ok, err := integer(item, AttrLeasePeriodMs)
	if err != nil {
		return bad(err)
	}
	if ok && ms > 0 {
		w.LeasePeriod = time.Duration(ms) * time.Millisecond
	}
	return w, nil
}

// str returns a string attribute; absent is "", false.
func str(item map[string]types.AttributeValue, name string) (string, bool, error) {
	v, ok := item[name]
	if !ok {
		return "", false, nil
	}
	s, isS := v.(*types.AttributeValueMemberS)
	if !isS {
		return "", false, fmt.Errorf("attribute %s is %s, want S", name, typeName(v))
	}
	return s.Value, true, nil
}

// integer returns a number attribute holding an int64; absent is 0, false.
func integer(item map[string]types.AttributeValue, name string) (int64, bool, error) {
	v, ok := item[name]
	if !ok {
		return 0, false, nil
	}
	n, isN := v.(*types.AttributeValueMemberN)
	if !isN {
		return 0, false, fmt.Errorf("attribute %s is %s, want N", name, typeName(v))
	}
	i, err := strconv.ParseInt(n.Value, 10, 64)
	if err != nil {
		return 0, false, fmt.Errorf("attribute %s: %w", name, err)
	}
	return i, true, nil
}

func typeName(v types.AttributeValue) string {
	switch v.(type) {
	case *types.AttributeValueMemberS:
		return "S"
	case *types.AttributeValueMemberN:
		return "N"
	case *types.AttributeValueMemberB:
		return "B"
	case *types.AttributeValueMemberBOOL:
		return "BOOL"
	case *types.AttributeValueMemberNULL:
		return "NULL"
	case *types.AttributeValueMemberSS:
		return "SS"
	case *types.AttributeValueMemberNS:
		return "NS"
	case *types.AttributeValueMemberBS:
		return "BS"
	case *types.AttributeValueMemberL:
		return "L"
	case *types.AttributeValueMemberM:
		return "M"
	default:
		return fmt.Sprintf("%T", v)
	}
}
