package input

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/benthos-kinesis/benthos-kinesis/checkpointer"
	"github.com/benthos-kinesis/benthos-kinesis/checkpointer/lease"
	"github.com/benthos-kinesis/benthos-kinesis/internal/awssession"
)

// Register adds the input to env under name.
func Register(env *service.Environment, name string) error {
	return env.RegisterBatchInput(name, Spec(), func(pConf *service.ParsedConfig, res *service.Resources) (service.BatchInput, error) {
		in, err := newKinesisInputFromParsed(pConf, res)
		if err != nil {
			return nil, err
		}
		return service.AutoRetryNacksBatchedToggled(pConf, in)
	})
}

// clients builds the service clients at Connect (replaced in tests).
type clients struct {
	kinesis  func() kinesisAPI
	dynamodb func() checkpointer.API
	// heartbeats is the heartbeat's own client; nil: another of dynamodb.
	heartbeats func() checkpointer.API
}

// kinesisInput is the aws_kinesis input: a service.BatchInput.
type kinesisInput struct {
	conf    inputConfig
	res     *service.Resources
	log     *service.Logger
	metrics *inputMetrics
	policy  service.BatchPolicy
	clients clients

	out  chan delivery
	gate *gate

	ownedCount atomic.Int64 // shards owned, for tests and the status log

	mu     sync.Mutex
	coord  *coordinator
	stop   context.CancelFunc
	done   chan struct{}
	closed chan struct{}
}

func newKinesisInputFromParsed(pConf *service.ParsedConfig, res *service.Resources) (*kinesisInput, error) {
	conf, err := inputConfigFromParsed(pConf)
	if err != nil {
		return nil, err
	}
	policy, err := pConf.FieldBatchPolicy(fieldBatching)
	if err != nil {
		return nil, err
	}
	kSess, err := awssession.FromParsed(context.Background(), pConf)
	if err != nil {
		return nil, err
	}
	dSess, err := dynamoSession(pConf, kSess)
	if err != nil {
		return nil, err
	}
	return newKinesisInput(conf, policy, res, clients{
		kinesis: func() kinesisAPI { return kinesis.NewFromConfig(kSess.Config) },
		dynamodb: func() checkpointer.API {
			return dynamodb.NewFromConfig(dSess.Config, leaseTableRetries(conf.leasePeriod, false))
		},
		heartbeats: func() checkpointer.API {
			return dynamodb.NewFromConfig(dSess.Config, leaseTableRetries(conf.leasePeriod, true))
		},
	}), nil
}

// leaseTableRetries bounds the SDK's own retries of a lease-table call so that they fit in the
// call's timeout (a third of the lease period): a throttled call fails fast and the lease
// machine retries it on its own schedule, rather than the SDK sleeping through the fencing
// margin.
// The heartbeat's client has no retry budget to run out of: a storm of failing writes must not
// stop it from retrying.
func leaseTableRetries(leasePeriod time.Duration, heartbeat bool) func(*dynamodb.Options) {
	return func(o *dynamodb.Options) {
		o.Retryer = retry.NewStandard(func(so *retry.StandardOptions) {
			so.MaxAttempts = 3
			so.MaxBackoff = min(max(leasePeriod/30, 20*time.Millisecond), time.Second)
			if heartbeat {
				so.RateLimiter = ratelimit.None
			}
		})
	}
}

// dynamoSession is the session of the dynamodb namespace. Its region and
// credentials default to the input's; its endpoint does not (an input
// endpoint points at Kinesis).
func dynamoSession(pConf *service.ParsedConfig, input awssession.Session) (awssession.Session, error) {
	db := pConf.Namespace(fieldDynamoDB)
	sess, err := awssession.FromParsed(context.Background(), db)
	if err != nil {
		return sess, fmt.Errorf("dynamodb: %w", err)
	}
	if r, _ := db.FieldString("region"); r == "" {
		sess.Config.Region = input.Config.Region
	}
	ownCreds := false
	for _, f := range []string{"profile", "id", "role"} {
		if v, _ := db.FieldString("credentials", f); v != "" {
			ownCreds = true
		}
	}
	if fromEC2, _ := db.FieldBool("credentials", "from_ec2_role"); fromEC2 {
		ownCreds = true
	}
	if !ownCreds {
		sess.Config.Credentials = input.Config.Credentials
	}
	return sess, nil
}

func newKinesisInput(conf inputConfig, policy service.BatchPolicy, res *service.Resources, c clients) *kinesisInput {
	return &kinesisInput{
		conf: conf, res: res, log: res.Logger(), metrics: newInputMetrics(res.Metrics()), policy: policy, clients: c,
		out: make(chan delivery), gate: newGate(), closed: make(chan struct{}),
	}
}

// Connect checks the streams and the table, writes the first heartbeat and
// starts the coordinator. Until it succeeds the input is not ready.
func (k *kinesisInput) Connect(ctx context.Context) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.stop != nil {
		return nil
	}
	kin := k.clients.kinesis()
	for _, s := range k.conf.streams {
		in := &kinesis.DescribeStreamSummaryInput{}
		if isARN(s.id) {
			in.StreamARN = aws.String(s.id)
		} else {
			in.StreamName = aws.String(s.id)
		}
		if _, err := kin.DescribeStreamSummary(ctx, in); err != nil {
			var nf *types.ResourceNotFoundException
			if errors.As(err, &nf) {
				return fmt.Errorf("stream %s does not exist: %w", s.id, err)
			}
			return fmt.Errorf("describe stream %s: %w", s.id, err)
		}
	}
	table, err := checkpointer.New(k.clients.dynamodb(), k.conf.table, newWorkerID(), checkpointer.WithLeasePeriod(k.conf.leasePeriod))
	if err != nil {
		return err
	}
	if err := table.EnsureTable(ctx, k.conf.create, k.conf.billingMode, k.conf.rcu, k.conf.wcu); err != nil {
		return err
	}
	deps := &consumerDeps{out: k.out, gate: k.gate, limit: k.conf.checkpointLimit, policy: k.policy, res: k.res, metrics: k.metrics}
	if k.policy.Period != "" {
		if deps.period, err = time.ParseDuration(k.policy.Period); err != nil {
			return fmt.Errorf("batching.period: %w", err)
		}
	}
	hbAPI := k.clients.dynamodb
	if k.clients.heartbeats != nil {
		hbAPI = k.clients.heartbeats
	}
	beats, err := checkpointer.New(hbAPI(), k.conf.table, table.WorkerID(), checkpointer.WithLeasePeriod(k.conf.leasePeriod))
	if err != nil {
		return err
	}
	coord, err := newCoordinator(k.conf, k.res, k.metrics, kin, table, beats, deps)
	if err != nil {
		return err
	}
	coord.ownedCount = &k.ownedCount
	if coord.firstBeat, err = coord.beat(ctx); err != nil {
		return fmt.Errorf("first heartbeat to dynamodb table %s: %w", k.conf.table, err)
	}
	// Nothing is delivered until the lease machine has read the table; a consumer that finds
	// the fencing deadline passed shuts the gate and wakes the machine to judge it.
	k.gate.set(false)
	k.gate.onFence = func() {
		k.gate.set(false)
		select {
		case coord.events <- lease.Tick{}:
		default:
		}
	}
	runCtx, cancel := context.WithCancel(context.Background())
	k.coord, k.stop, k.done = coord, cancel, make(chan struct{})
	go func() {
		defer close(k.done)
		coord.run(runCtx)
	}()
	k.log.Infof("Reading %d stream(s) as worker %s, leases in dynamodb table %s", len(k.conf.streams), table.WorkerID(), k.conf.table)
	return nil
}

func newWorkerID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// ReadBatch returns the next batch of any owned shard.
func (k *kinesisInput) ReadBatch(ctx context.Context) (service.MessageBatch, service.AckFunc, error) {
	for {
		select {
		case d := <-k.out:
			if !k.gate.admit(ctx, d) {
				if ctx.Err() != nil {
					return nil, nil, ctx.Err()
				}
				continue
			}
			return d.batch, d.ack, nil
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		case <-k.closed:
			return nil, nil, service.ErrEndOfInput
		}
	}
}

// crash stops the input the way kill -9 would: no final checkpoint, no
// release, no goodbye to the table (tests only).
func (k *kinesisInput) crash() {
	k.mu.Lock()
	coord := k.coord
	k.mu.Unlock()
	if coord != nil {
		coord.crash.Store(true)
	}
	_ = k.Close(context.Background())
}

// Close stops reading, waits (bounded by steal_grace_period) for what was
// delivered to be acknowledged, writes the final checkpoints and releases
// every lease.
func (k *kinesisInput) Close(ctx context.Context) error {
	k.mu.Lock()
	stop, done := k.stop, k.done
	k.stop = nil
	select {
	case <-k.closed:
	default:
		close(k.closed)
	}
	k.mu.Unlock()
	if stop == nil {
		return nil
	}
	stop()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
