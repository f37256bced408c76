package input

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/benthos-kinesis/benthos-kinesis/internal/kinesisapi"
)

// kinesisAPI is the part of the Kinesis client the input uses.
type kinesisAPI interface {
	GetShardIterator(ctx context.Context, in *kinesis.GetShardIteratorInput, opts ...func(*kinesis.Options)) (*kinesis.GetShardIteratorOutput, error)
	GetRecords(ctx context.Context, in *kinesis.GetRecordsInput, opts ...func(*kinesis.Options)) (*kinesis.GetRecordsOutput, error)
	ListShards(ctx context.Context, in *kinesis.ListShardsInput, opts ...func(*kinesis.Options)) (*kinesis.ListShardsOutput, error)
	DescribeStreamSummary(ctx context.Context, in *kinesis.DescribeStreamSummaryInput, opts ...func(*kinesis.Options)) (*kinesis.DescribeStreamSummaryOutput, error)
}

// startPosition is where a shard reader begins when it has no checkpoint of
// its own to resume after.
type startPosition struct {
	afterSequence string // resume after this record (a checkpoint)
	// insideAggregate: the checkpoint is a user record inside the KPL aggregate afterSequence
	// (it has a sub-sequence number): read from that record again; the consumer skips the user
	// records up to the checkpoint.
	insideAggregate bool
	atTimestamp     *time.Time // else from the first record at or after this time
	latest          bool       // else from the tip (start_from_oldest: false)
	// else from the oldest record (TRIM_HORIZON)
}

// pacing is how a reader spaces its GetRecords calls.
type pacing struct {
	// minInterval keeps one shard within Kinesis' 5 GetRecords calls/s.
	minInterval time.Duration
	// idleWait is the pause at the tip of the shard, when a call returned
	// nothing new; behind the tip there is none beyond minInterval.
	idleWait time.Duration
	// throttleBase and throttleMax bound the jittered backoff after
	// ProvisionedThroughputExceededException (and after an iterator that expires again at once).
	throttleBase, throttleMax time.Duration
	// callTimeout bounds one GetRecords or GetShardIterator call: a call that gets no answer
	// (a network black hole) fails after it, and the consumer's run ends and restarts where it
	// was, instead of holding its partial batch for as long as the network is gone.
	callTimeout time.Duration
	// phase shifts the grid of idle calls (see idleAt) for this reader: the readers of a
	// process share a few phases, so that each wake-up serves a group of them.
	phase time.Duration
}

var defaultPacing = pacing{
	minInterval:  200 * time.Millisecond,
	idleWait:     time.Second,
	throttleBase: 250 * time.Millisecond,
	throttleMax:  5 * time.Second,
	callTimeout:  10 * time.Second,
}

// nextDelay is the wait at now before the next GetRecords call of a shard, given when the
// last call started and what it returned. Times are on the monotonic clock of monoBase.
func (p pacing) nextDelay(lastCall, now time.Duration, records int, millisBehind int64) time.Duration {
	at := lastCall + p.minInterval
	if records == 0 && millisBehind == 0 {
		at = max(at, p.idleAt(lastCall)) // at the tip: nothing to hurry for
	}
	return max(at-now, 0)
}

// idleAt is when a reader at the tip calls again after a call at last: at the first point of
// a process-wide grid of idleWait (shifted by phase) that is at least minInterval after it, so
// that the idle readers of a process wake together. On an idle input each wake-up from sleep costs more CPU
// than the call it makes (a call made alongside others costs a fraction of one made alone), so
// one wake-up a second for every shard rather than one per shard is most of the saving. The
// call is never later than idleWait after the last one, so a record waits no longer than it
// would without the grid: when no grid point falls in that window (the last call was just
// before one), the reader calls as soon as minInterval allows, and the call after lands on the
// grid.
func (p pacing) idleAt(last time.Duration) time.Duration {
	earliest := last + p.minInterval
	if p.idleWait <= 0 {
		return last + p.idleWait
	}
	// The first grid point at or after earliest: phase + k*idleWait.
	off := (earliest - p.phase) % p.idleWait
	if off < 0 {
		off += p.idleWait
	}
	g := earliest
	if off > 0 {
		g += p.idleWait - off
	}
	if g <= last+p.idleWait {
		return g
	}
	return earliest
}

// throttleDelay is the jittered backoff after the n-th throttled call in a row.
func (p pacing) throttleDelay(n int) time.Duration {
	d := p.throttleBase << min(n-1, 10)
	if d > p.throttleMax || d <= 0 {
		d = p.throttleMax
	}
	// Full jitter between half and all of d, so that the readers of a fleet
	// do not retry in step.
	return d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
}

// errShardEnded is returned once a closed shard has been read to its end.
var errShardEnded = errors.New("shard ended")

// shardReader reads one shard with GetRecords, paced to the service limits.
// It is driven by one goroutine (its owner's) and is not safe for concurrent
// use.
type shardReader struct {
	client  kinesisAPI
	stream  kinesisapi.Stream
	shardID string
	start   startPosition
	pace    pacing
	limit   int32 // the most records an answer may hold (poll.limit)
	// sized is the Limit of the next call: limit, or fewer when records are large (KPL
	// aggregates), so that an answer holds about answerBytes (see sizeNextCall).
	sized int32

	iterator   *string
	lastSeq    string    // the last record returned, to renew an expired iterator
	rewoundTo  string    // read again from this record (rewind), until a record is returned
	lastCall   time.Time // when the last GetRecords call started
	lastCount  int
	lastBehind int64
	throttles  int // consecutive throttled calls
	expiries   int // consecutive ExpiredIteratorExceptions
	// sleep waits between calls (kinesisapi.Sleep; tests record the waits instead).
	sleep      func(ctx context.Context, d time.Duration) error
	ended      bool
	answers    int    // GetRecords calls answered: a consumer that got any made progress
	onThrottle func() // called for every throttled call, if set
}

func newShardReader(client kinesisAPI, stream, shardID string, start startPosition, pace pacing) *shardReader {
	return &shardReader{client: client, stream: kinesisapi.Stream(stream), shardID: shardID, start: start, pace: pace, limit: 10000, sleep: kinesisapi.Sleep}
}

// plannedDelay is how long the next call to next will wait before calling
// GetRecords.
func (r *shardReader) plannedDelay() time.Duration {
	if r.lastCall.IsZero() {
		return 0
	}
	return r.pace.nextDelay(r.lastCall.Sub(monoBase), mono(), r.lastCount, r.lastBehind)
}

// rewind makes the next call read again from the record at seq: records the reader returned
// from there on never reached the pipeline (a read or batching error, or a stop, left them in a
// partial batch), and must not be skipped by the consumer's next run.
func (r *shardReader) rewind(seq string) {
	r.rewoundTo, r.lastSeq, r.iterator, r.ended = seq, "", nil, false
}

// fetched is one GetRecords answer.
type fetched struct {
	records      []types.Record
	millisBehind int64
}

// next waits as the pacing says, then fetches the next records. It returns
// errShardEnded once a closed shard is exhausted.
func (r *shardReader) next(ctx context.Context) (fetched, error) {
	if r.ended {
		return fetched{}, errShardEnded
	}

	if !r.lastCall.IsZero() {
		if d := r.plannedDelay(); d > 0 {
			if err := r.sleep(ctx, d); err != nil {
				return fetched{}, err
			}
		}
	}
	for {
		if r.iterator == nil {
			if err := r.renewIterator(ctx); err != nil {
				return fetched{}, err
			}
		}
		r.lastCall = time.Now()
		out, err := r.getRecords(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return fetched{}, ctx.Err()
			}
			var throttled *types.ProvisionedThroughputExceededException
			var expired *types.ExpiredIteratorException
			var kmsThrottled *types.KMSThrottlingException
			switch {
			case errors.As(err, &throttled), errors.As(err, &kmsThrottled):
				r.throttles++
				if r.onThrottle != nil {
					r.onThrottle()
				}
				if err := r.sleep(ctx, r.pace.throttleDelay(r.throttles)); err != nil {
					return fetched{}, err
				}
				continue
			case errors.As(err, &expired):
				r.iterator = nil // renewed from the last record read
				// Once is normal (a pipeline that held the consumer past 5 minutes); again
				// at once, the renewal would spin, and Kinesis allows 5 GetShardIterator
				// calls per second per shard: back off as from a throttle.
				r.expiries++
				if r.expiries > 1 {
					if err := r.sleep(ctx, r.pace.throttleDelay(r.expiries-1)); err != nil {
						return fetched{}, err
					}
				}
				continue
			case kinesisapi.IsNotFound(err):
				// Not NotFound's wording: the answer may be about the shard.
				return fetched{}, fmt.Errorf("read shard %s of %s: the stream or shard no longer exists: %w", r.shardID, r.stream, err)
			}
			return fetched{}, fmt.Errorf("read shard %s of %s: %w", r.shardID, r.stream, err)
		}
		r.throttles, r.expiries = 0, 0
		r.answers++
		r.iterator = out.NextShardIterator
		if r.iterator == nil {
			r.ended = true
		}
		r.lastCount = len(out.Records)
		r.sizeNextCall(out.Records)
		r.lastBehind = aws.ToInt64(out.MillisBehindLatest)
		if n := len(out.Records); n > 0 {
			r.lastSeq, r.rewoundTo = aws.ToString(out.Records[n-1].SequenceNumber), ""
		}
		if len(out.Records) == 0 && r.ended {
			return fetched{}, errShardEnded
		}
		return fetched{records: out.Records, millisBehind: r.lastBehind}, nil
	}
}

// answerBytes is the data an answer is sized to hold. The SDK reads every answer into a buffer
// that it pools only up to 64 KiB and otherwise grows from empty, so answers of 10 MB (large
// records, KPL aggregates: the 10,000-record limit never binds) cost twice the CPU per byte of
// answers of one: BenchmarkInputFakeKPL, 14.7 against 8.4 cpu-µs a user record. At one call per
// 200 ms, 1 MiB answers still read 5 MiB/s, over a shard's 2 MiB/s.
const answerBytes = 1 << 20

// sizeNextCall sets the next call's Limit from the size of the records just read.
func (r *shardReader) sizeNextCall(recs []types.Record) {
	if len(recs) == 0 {
		return
	}
	size := 0
	for i := range recs {
		size += len(recs[i].Data)
	}
	n := int64(answerBytes) * int64(len(recs)) / int64(max(size, 1))
	r.sized = int32(min(max(n, 1), int64(r.limit)))
}

// getRecords makes one GetRecords call, bounded by the call timeout.
func (r *shardReader) getRecords(ctx context.Context) (*kinesis.GetRecordsOutput, error) {
	cctx, cancel := r.callContext(ctx)
	defer cancel()
	return r.client.GetRecords(cctx, &kinesis.GetRecordsInput{
		ShardIterator: r.iterator, Limit: aws.Int32(cmp.Or(r.sized, r.limit)), StreamARN: r.stream.ARN(),
	})
}

func (r *shardReader) callContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if r.pace.callTimeout <= 0 {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, r.pace.callTimeout)
}

// renewIterator gets an iterator after the last record read, or at the start
// position when nothing has been read yet.
func (r *shardReader) renewIterator(ctx context.Context) error {
	in := &kinesis.GetShardIteratorInput{StreamName: r.stream.Name(), StreamARN: r.stream.ARN(), ShardId: aws.String(r.shardID)}
	switch after := r.lastSeq; {
	case r.rewoundTo != "":
		in.ShardIteratorType = types.ShardIteratorTypeAtSequenceNumber
		in.StartingSequenceNumber = aws.String(r.rewoundTo)
	case after == "" && r.start.afterSequence != "" && r.start.insideAggregate:
		in.ShardIteratorType = types.ShardIteratorTypeAtSequenceNumber
		in.StartingSequenceNumber = aws.String(r.start.afterSequence)
	case after == "" && r.start.afterSequence != "":
		after = r.start.afterSequence
		fallthrough
	case after != "":
		in.ShardIteratorType = types.ShardIteratorTypeAfterSequenceNumber
		in.StartingSequenceNumber = aws.String(after)
	case r.start.atTimestamp != nil:
		in.ShardIteratorType = types.ShardIteratorTypeAtTimestamp
		in.Timestamp = r.start.atTimestamp
	case r.start.latest:
		in.ShardIteratorType = types.ShardIteratorTypeLatest
	default:
		in.ShardIteratorType = types.ShardIteratorTypeTrimHorizon
	}
	cctx, cancel := r.callContext(ctx)
	out, err := r.client.GetShardIterator(cctx, in)
	cancel()
	if err != nil {
		if kinesisapi.IsNotFound(err) {
			return fmt.Errorf("iterator for shard %s of %s: the stream or shard does not exist: %w", r.shardID, r.stream, err)
		}
		return fmt.Errorf("iterator for shard %s of %s (%s): %w", r.shardID, r.stream, in.ShardIteratorType, err)
	}
	if out.ShardIterator == nil {
		r.ended = true
		return errShardEnded
	}
	r.iterator = out.ShardIterator
	return nil
}
