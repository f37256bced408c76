package checkpointer

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// WorkersPartition is the StreamID of the worker (heartbeat) rows. No stream can be configured
// with this name (see LEASES.md, "Rows").
const WorkersPartition = "__benthos_kinesis_workers__"

// Attribute names of the rows (LEASES.md, "Rows").
const (
	AttrStreamID       = "StreamID"
	AttrShardID        = "ShardID"
	AttrSequenceNumber = "SequenceNumber"
	AttrSubSequence    = "SubSequence"
	AttrClientID       = "ClientID"
	AttrLeaseTimeout   = "LeaseTimeout"
	AttrEpoch          = "Epoch"
	AttrFinished       = "Finished"
	AttrHandoffTo      = "HandoffTo"
	AttrHandoffEpoch   = "HandoffEpoch"
	AttrStartAt        = "StartAt"
	AttrHeartbeat      = "Heartbeat"
	AttrStreams        = "Streams"
	AttrStarted        = "Started"
	// AttrWorkerName is the worker row's human-readable name ("host:pid"), which maps an owner
	// id to a host or pod. Not "Name": a DynamoDB reserved word, awkward in expressions.
	AttrWorkerName = "WorkerName"
	// AttrLeasePeriodMs is the worker's lease period in milliseconds, written with each
	// heartbeat: a tool that judges liveness from the worker rows (kinesis leases) reads it
	// instead of guessing the fleet's lease_period.
	AttrLeasePeriodMs = "LeasePeriodMs"
)

// MaxWorkerNameBytes bounds the worker name written with each heartbeat, so that the worker
// row stays small (it is read by every worker every heartbeat period).
const MaxWorkerNameBytes = 128

// Billing modes accepted by EnsureTable (the built-in's dynamodb.billing_mode values).
const (
	BillingPayPerRequest = "PAY_PER_REQUEST"
	BillingProvisioned   = "PROVISIONED"
)

// DefaultLeasePeriod is the lease period used for the LeaseTimeout attribute when WithLeasePeriod
// is not given (the built-in input's default lease_period).
const DefaultLeasePeriod = 30 * time.Second

// API is the part of the DynamoDB client a Table uses; *dynamodb.Client implements it. Wrap it to
// count or inject faults (CountingClient).
type API interface {
	DescribeTable(ctx context.Context, in *dynamodb.DescribeTableInput, optFns ...func(*dynamodb.Options)) (*dynamodb.DescribeTableOutput, error)
	CreateTable(ctx context.Context, in *dynamodb.CreateTableInput, optFns ...func(*dynamodb.Options)) (*dynamodb.CreateTableOutput, error)
	Query(ctx context.Context, in *dynamodb.QueryInput, optFns ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error)
	GetItem(ctx context.Context, in *dynamodb.GetItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
	PutItem(ctx context.Context, in *dynamodb.PutItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
	UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error)
	DeleteItem(ctx context.Context, in *dynamodb.DeleteItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error)
}

var _ API = (*dynamodb.Client)(nil)

// Table is one worker's handle on the lease table. It is safe for concurrent use; it keeps no
// lease state of its own.
type Table struct {
	api         API
	name        string
	worker      string
	workerName  string
	started     time.Time
	leasePeriod time.Duration
	pageLimit   int32
	now         func() time.Time
	// pollMin and pollMax bound the interval at which EnsureTable waits for ACTIVE.
	pollMin, pollMax time.Duration
}

// Option configures a Table.
type Option func(*Table)

// WithLeasePeriod sets the lease period added to the current time in the LeaseTimeout attribute
// written on every change of owner (informational: read by the built-in input's tools, never for
// liveness). Default DefaultLeasePeriod.
func WithLeasePeriod(d time.Duration) Option {
	return func(t *Table) {
		if d > 0 {
			t.leasePeriod = d
		}
	}
}

// WithPageLimit sets the Limit of each Query page (0: none, DynamoDB pages at 1 MB). Tests and
// benchmarks use it to exercise pagination with few rows.
func WithPageLimit(n int32) Option {
	return func(t *Table) {
		if n >= 0 {
			t.pageLimit = n
		}
	}
}

// WithClock sets the wall clock used for LeaseTimeout and Started (default time.Now).
func WithClock(now func() time.Time) Option {
	return func(t *Table) {
		if now != nil {
			t.now = now
		}
	}
}

// WithWorkerName sets the human-readable name written in the worker row (AttrWorkerName), cut
// to MaxWorkerNameBytes. Default DefaultWorkerName(); empty writes no name.
func WithWorkerName(name string) Option {
	return func(t *Table) { t.workerName = boundName(name) }
}

// DefaultWorkerName is "<hostname>:<pid>" ("unknown" when the host name cannot be read): what
// an operator needs to find the process behind an owner id (a pod's host name is its name).
func DefaultWorkerName() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "unknown"
	}
	return boundName(host + ":" + strconv.Itoa(os.Getpid()))
}

// boundName cuts name to MaxWorkerNameBytes without splitting a UTF-8 sequence, and makes it
// valid UTF-8 (DynamoDB rejects a string attribute that is not).
func boundName(name string) string {
	name = strings.ToValidUTF8(name, "?")
	if len(name) <= MaxWorkerNameBytes {
		return name
	}
	i := MaxWorkerNameBytes
	for i > 0 && !utf8.RuneStart(name[i]) {
		i--
	}
	return name[:i]
}

// New returns the handle of worker workerID on the lease table named table. It makes no call;
// use EnsureTable to check or create the table.
func New(api API, table, workerID string, opts ...Option) (*Table, error) {
	switch {
	case api == nil:
		return nil, errors.New("checkpointer: nil DynamoDB client")
	case table == "":
		return nil, errors.New("checkpointer: empty dynamodb table name")
	case workerID == "":
		return nil, errors.New("checkpointer: empty worker id")
	}
	t := &Table{
		api:         api,
		name:        table,
		worker:      workerID,
		workerName:  DefaultWorkerName(),
		leasePeriod: DefaultLeasePeriod,
		now:         time.Now,
		pollMin:     25 * time.Millisecond,
		pollMax:     time.Second,
	}
	for _, o := range opts {
		o(t)
	}
	t.started = t.now()
	return t, nil
}

// Name returns the table's name.
func (t *Table) Name() string { return t.name }

// WorkerID returns the id this handle writes as ClientID and as its worker row's ShardID.
func (t *Table) WorkerID() string { return t.worker }

// WorkerName returns the name this handle writes in its worker row (AttrWorkerName).
func (t *Table) WorkerName() string { return t.workerName }

// EnsureTable checks that the table exists, is usable and has the key schema hash StreamID (S),
// range ShardID (S). When it does not exist and create is true it creates it (billingMode
// PAY_PER_REQUEST, the default when empty, or PROVISIONED with rcu and wcu) and waits until it is
// ACTIVE; bound the wait with ctx. A table being created by another worker at the same time is
// waited for.
func (t *Table) EnsureTable(ctx context.Context, create bool, billingMode string, rcu, wcu int64) error {
	out, err := t.api.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(t.name)})
	var notFound *types.ResourceNotFoundException
	switch {
	case err == nil:
		if out.Table == nil {
			return fmt.Errorf("describe dynamodb table %q: empty answer", t.name)
		}
		switch out.Table.TableStatus {
		case types.TableStatusActive, types.TableStatusUpdating:
			return t.checkKeySchema(out.Table)
		case types.TableStatusCreating:
			return t.waitActive(ctx)
		default:
			return fmt.Errorf("dynamodb table %q is not usable (status %s)", t.name, out.Table.TableStatus)
		}
	case !errors.As(err, &notFound):
		return fmt.Errorf("describe dynamodb table %q: %w", t.name, err)
	case !create:
		return fmt.Errorf("dynamodb table %q does not exist (set dynamodb.create: true to create it)", t.name)
	}

	in := &dynamodb.CreateTableInput{
		TableName: aws.String(t.name),
		AttributeDefinitions: []types.AttributeDefinition{
			{AttributeName: aws.String(AttrStreamID), AttributeType: types.ScalarAttributeTypeS},
			{AttributeName: aws.String(AttrShardID), AttributeType: types.ScalarAttributeTypeS},
		},
		KeySchema: []types.KeySchemaElement{
			{AttributeName: aws.String(AttrStreamID), KeyType: types.KeyTypeHash},
			{AttributeName: aws.String(AttrShardID), KeyType: types.KeyTypeRange},
		},
	}
	switch strings.ToUpper(billingMode) {
	case "", BillingPayPerRequest:
		in.BillingMode = types.BillingModePayPerRequest
	case BillingProvisioned:
		if rcu < 1 || wcu < 1 {
			return fmt.Errorf("create dynamodb table %q: billing mode PROVISIONED needs read and write capacity units of at least 1 (got %d and %d)", t.name, rcu, wcu)
		}
		in.BillingMode = types.BillingModeProvisioned
		in.ProvisionedThroughput = &types.ProvisionedThroughput{
			ReadCapacityUnits:  aws.Int64(rcu),
			WriteCapacityUnits: aws.Int64(wcu),
		}
	default:
		return fmt.Errorf("create dynamodb table %q: unknown billing mode %q (want %s or %s)", t.name, billingMode, BillingPayPerRequest, BillingProvisioned)
	}
	var inUse *types.ResourceInUseException
	if _, err := t.api.CreateTable(ctx, in); err != nil && !errors.As(err, &inUse) {
		return fmt.Errorf("create dynamodb table %q: %w", t.name, err)
	}
	// ResourceInUse: another worker is creating it; wait for it like for ours.
	return t.waitActive(ctx)
}

// waitActive polls DescribeTable until the table is ACTIVE, then checks its key schema.
func (t *Table) waitActive(ctx context.Context) error {
	last := "not described yet"
	delay := t.pollMin
	for {
		out, err := t.api.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(t.name)})
		var notFound *types.ResourceNotFoundException
		switch {
		case err == nil && out.Table != nil:
			switch out.Table.TableStatus {
			case types.TableStatusActive, types.TableStatusUpdating:
				return t.checkKeySchema(out.Table)
			case types.TableStatusCreating:
				last = "status CREATING"
			default:
				return fmt.Errorf("dynamodb table %q will not become ACTIVE (status %s)", t.name, out.Table.TableStatus)
			}
		case err == nil:
			last = "empty answer"
		case errors.As(err, &notFound):
			last = "not found" // just created: DescribeTable is eventually consistent
		case ctx.Err() != nil:
			return fmt.Errorf("dynamodb table %q not ACTIVE (last: %s): %w", t.name, last, ctx.Err())
		default:
			return fmt.Errorf("wait for dynamodb table %q to be ACTIVE: %w", t.name, err)
		}
		timer := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			timer.Stop()
			return fmt.Errorf("dynamodb table %q not ACTIVE (last: %s): %w", t.name, last, ctx.Err())
		case <-timer.C:
		}
		delay = min(2*delay, t.pollMax)
	}
}

// checkKeySchema reports a table whose keys are not hash StreamID (S), range ShardID (S).
func (t *Table) checkKeySchema(d *types.TableDescription) error {
	var hash, rng string
	for _, k := range d.KeySchema {
		switch k.KeyType {
		case types.KeyTypeHash:
			hash = aws.ToString(k.AttributeName)
		case types.KeyTypeRange:
			rng = aws.ToString(k.AttributeName)
		}
	}
	typeOf := func(name string) types.ScalarAttributeType {
		for _, a := range d.AttributeDefinitions {
			if aws.ToString(a.AttributeName) == name {
				return a.AttributeType
			}
		}
		return ""
	}
	if hash == AttrStreamID && rng == AttrShardID &&
		typeOf(AttrStreamID) == types.ScalarAttributeTypeS && typeOf(AttrShardID) == types.ScalarAttributeTypeS {
		return nil
	}
	desc := fmt.Sprintf("hash key %s (%s)", orNone(hash), typeOf(hash))
	if rng != "" {
		desc += fmt.Sprintf(", range key %s (%s)", rng, typeOf(rng))
	} else {
		desc += ", no range key"
	}
	return fmt.Errorf("dynamodb table %q has %s; the lease table needs hash key StreamID (S) and range key ShardID (S), as the built-in aws_kinesis input's", t.name, desc)
}

func orNone(s string) string {
	if s == "" {
		return "<none>"
	}
	return s
}

// checkShard validates the key of a shard row.
func checkShard(stream, shard string) error {
	switch {
	case stream == "":
		return errors.New("empty stream")
	case stream == WorkersPartition:
		return fmt.Errorf("stream %q is the reserved partition of the worker rows", stream)
	case shard == "":
		return errors.New("empty shard id")
	}
	return nil
}

func key(stream, shard string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{
		AttrStreamID: &types.AttributeValueMemberS{Value: stream},
		AttrShardID:  &types.AttributeValueMemberS{Value: shard},
	}
}
