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

	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/benthos-kinesis/benthos-kinesis/checkpointer"
	"github.com/benthos-kinesis/benthos-kinesis/checkpointer/lease"
	"github.com/benthos-kinesis/benthos-kinesis/internal/awssession"
	"github.com/benthos-kinesis/benthos-kinesis/internal/kinesisapi"
)

// Register adds the input to env under name.
func Register(env *service.Environment, name string) error {
	return env.RegisterBatchInput(name, Spec(), func(pConf *service.ParsedConfig, res *service.Resources) (service.BatchInput, error) {
		in, err := newKinesisInputFromParsed(pConf, res)
		if err != nil {
			return nil, err
		}
		return registered(pConf, in)
	})
}

// registered is what Register gives Benthos for in.
//
// auto_replay_nacks is the input's own: Benthos' wrapper
// (service.AutoRetryNacksBatched) would replay a nacked batch itself, above
// the gate, even after the worker fenced itself or lost the shard. Here a
// replay goes through ReadBatch like any delivery.
func registered(pConf *service.ParsedConfig, in *kinesisInput) (service.BatchInput, error) {
	replay, err := pConf.FieldBool(service.AutoRetryNacksToggleFieldName)
	if err != nil {
		return nil, err
	}
	in.replayNacks = replay
	return in, nil
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

	// replayNacks (auto_replay_nacks): a nacked batch is delivered again
	// rather than counted as done.
	replayNacks bool
	// replays are the deliveries ReadBatch hands out again (before new
	// ones of their shard): nacked batches, and those it took but could not
	// hand out before its context ended.
	replays replayQueue

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
		stream := kinesisapi.Stream(s.id)
		in := &kinesis.DescribeStreamSummaryInput{StreamName: stream.Name(), StreamARN: stream.ARN()}
		if _, err := kin.DescribeStreamSummary(ctx, in); err != nil {
			if kinesisapi.IsNotFound(err) {
				return kinesisapi.NotFound(stream, err)
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
	deps := &consumerDeps{out: k.out, gate: k.gate, limit: k.conf.checkpointLimit, policy: k.policy, res: k.res, metrics: k.metrics, raw: !k.conf.deaggregate}
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

// ReadBatch returns the next batch of any owned shard: a batch to replay,
// else a new one. Every batch goes through the gate (open, deadline not
// passed, its shard still its consumer's); one whose shard is no longer its
// consumer's is abandoned, and one taken when ctx ends is kept for the next
// call (or abandoned when its consumer stops, if none comes: Benthos calls
// ReadBatch no more once it stops).
func (k *kinesisInput) ReadBatch(ctx context.Context) (service.MessageBatch, service.AckFunc, error) {
	for {
		d, attempts, err := k.next(ctx)
		if err != nil {
			return nil, nil, err
		}
		if !k.gate.admit(ctx, d) || ctx.Err() != nil {
			if d.ctx.Err() != nil {
				// Lost meanwhile (or stopped): the next owner reads it
				// again from the checkpoint.
				d.f.abandon()
				continue
			}
			k.replays.push(d, attempts, time.Time{}) // due at once
			return nil, nil, ctx.Err()
		}
		return k.handOut(ctx, d, attempts)
	}
}

// next waits for the next delivery: a due replay first, else a new one.
// attempts is how many times it was handed out before.
func (k *kinesisInput) next(ctx context.Context) (delivery, int, error) {
	for {
		select {
		case <-k.closed:
			return delivery{}, 0, service.ErrEndOfInput
		default:
		}
		e, wait, changed := k.replays.take(time.Now())
		if e != nil {
			return e.d, e.attempts, nil
		}
		var (
			timer *time.Timer
			due   <-chan time.Time
		)
		if wait > 0 {
			timer = time.NewTimer(wait)
			due = timer.C
		}
		var (
			d   delivery
			got bool
			err error
		)
		select {
		case d = <-k.out:
			got = true
		case <-changed:
		case <-due:
		case <-ctx.Done():
			err = ctx.Err()
		case <-k.closed:
			err = service.ErrEndOfInput
		}
		if timer != nil {
			timer.Stop()
		}
		switch {
		case err != nil:
			return delivery{}, 0, err
		case got && !k.replays.pushIfHeld(d): // else behind its shard's earlier batches
			return d, 0, nil
		}
	}
}

// handOut gives d to the pipeline, with the function that answers for it:
// it acknowledges the batch, or with auto_replay_nacks replays a nacked one
// (only its failed messages, for a batch error that names them).
func (k *kinesisInput) handOut(ctx context.Context, d delivery, attempts int) (service.MessageBatch, service.AckFunc, error) {
	h := &handout{k: k, d: d, attempts: attempts + 1}
	batch := d.batch
	if k.replayNacks {
		// The pipeline may change the messages; a replay sends them as
		// they were.
		batch = d.batch.Copy()
		h.index = batch.Index()
	}
	d.f.handedOut(ctx)
	return batch, h.answer, nil
}

// handout is one batch given to the pipeline by ReadBatch.
type handout struct {
	k        *kinesisInput
	d        delivery
	attempts int
	index    *service.Indexer // with auto_replay_nacks
	answered atomic.Bool
}

func (h *handout) answer(_ context.Context, err error) error {
	if !h.answered.CompareAndSwap(false, true) {
		return nil
	}
	if err == nil || !h.k.replayNacks {
		h.d.f.done()
		return nil
	}
	// Replayed through ReadBatch, behind the gate: not if the shard is no
	// longer its consumer's (the replay queue abandons it then).
	h.d.f.answered()
	d := h.d
	d.batch = h.failed(err)
	var at time.Time
	if wait := replayDelay(h.attempts); wait > 0 {
		at = time.Now().Add(wait)
	}
	h.k.replays.push(d, h.attempts, at)
	return nil
}

// failed is the part of the batch to replay after err: the messages a batch
// error names, or all of them.
func (h *handout) failed(err error) service.MessageBatch {
	var bErr *service.BatchError
	if h.index == nil || !errors.As(err, &bErr) || bErr.IndexedErrors() == 0 {
		return h.d.batch
	}
	failed := make([]bool, len(h.d.batch))
	n := 0
	bErr.WalkMessagesIndexedBy(h.index, func(i int, _ *service.Message, err error) bool {
		if err != nil && i >= 0 && i < len(failed) && !failed[i] {
			failed[i] = true
			n++
		}
		return true
	})
	if n == 0 {
		return h.d.batch
	}
	sub := make(service.MessageBatch, 0, n)
	for i, m := range h.d.batch {
		if failed[i] {
			sub = append(sub, m)
		}
	}
	return sub
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
