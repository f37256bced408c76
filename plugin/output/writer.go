package output

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/smithy-go"
	"github.com/redpanda-data/benthos/v4/public/service"
)

// kinesisAPI is the part of the Kinesis client the output uses.
type kinesisAPI interface {
	DescribeStreamSummary(ctx context.Context, in *kinesis.DescribeStreamSummaryInput, opts ...func(*kinesis.Options)) (*kinesis.DescribeStreamSummaryOutput, error)
	ListShards(ctx context.Context, in *kinesis.ListShardsInput, opts ...func(*kinesis.Options)) (*kinesis.ListShardsOutput, error)
	PutRecords(ctx context.Context, in *kinesis.PutRecordsInput, opts ...func(*kinesis.Options)) (*kinesis.PutRecordsOutput, error)
	PutRecord(ctx context.Context, in *kinesis.PutRecordInput, opts ...func(*kinesis.Options)) (*kinesis.PutRecordOutput, error)
}

// shardState is what the output keeps per shard across shard-map refreshes.
type shardState struct {
	id      string
	limiter *shardLimiter
}

// writerMetrics are the output's own metrics, labelled by stream (and shard).
type writerMetrics struct {
	records, bytes, throttled *service.MetricCounter // stream, shard
	retries, failed           *service.MetricCounter // stream
	refreshes, mispredicted   *service.MetricCounter // stream
	requestLatency            *service.MetricTimer   // stream
}

func newWriterMetrics(m *service.Metrics) writerMetrics {
	return writerMetrics{
		records:        m.NewCounter("kinesis_output_records", "stream", "shard"),
		bytes:          m.NewCounter("kinesis_output_bytes", "stream", "shard"),
		throttled:      m.NewCounter("kinesis_output_throttled", "stream", "shard"),
		retries:        m.NewCounter("kinesis_output_retries", "stream"),
		failed:         m.NewCounter("kinesis_output_failed", "stream"),
		refreshes:      m.NewCounter("kinesis_output_shard_map_refreshes", "stream"),
		mispredicted:   m.NewCounter("kinesis_output_shard_mispredicted", "stream"),
		requestLatency: m.NewTimer("kinesis_output_put_records_latency_ns", "stream"),
	}
}

// kinesisWriter is the aws_kinesis output: a service.BatchOutput.
type kinesisWriter struct {
	conf    writerConfig
	log     *service.Logger
	metrics writerMetrics
	now     func() time.Time
	sleep   func(ctx context.Context, d time.Duration) error // between rounds of a batch

	// newClient builds the client at Connect (replaced in tests).
	newClient func() kinesisAPI

	mu      sync.Mutex // guards connecting and closing
	client  kinesisAPI // set by the first Connect, before shardMap
	stop    context.CancelFunc
	stopped chan struct{}

	// shardMap is nil until connected; its Store publishes client too.
	shardMap atomic.Pointer[shardMap]

	statesMu sync.Mutex // guards states
	states   map[string]*shardState

	refreshNow chan struct{}
}

func newKinesisWriter(conf writerConfig, res *service.Resources, newClient func() kinesisAPI) *kinesisWriter {
	return &kinesisWriter{
		conf:       conf,
		log:        res.Logger(),
		metrics:    newWriterMetrics(res.Metrics()),
		now:        time.Now,
		sleep:      sleepCtx,
		newClient:  newClient,
		states:     map[string]*shardState{},
		refreshNow: make(chan struct{}, 1),
	}
}

// streamRef names the stream in a request: by ARN when the user gave one, by
// name otherwise (some emulators reject ARNs).
func (w *kinesisWriter) streamRef() (name, arn *string) {
	if strings.HasPrefix(w.conf.stream, "arn:") {
		return nil, aws.String(w.conf.stream)
	}
	return aws.String(w.conf.stream), nil
}

// Connect checks that the stream exists and is writable, loads its shard map
// and starts the refresher.
func (w *kinesisWriter) Connect(ctx context.Context) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.stop != nil {
		return nil
	}
	if w.client == nil {
		w.client = w.newClient()
	}
	name, arn := w.streamRef()
	sum, err := w.client.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: name, StreamARN: arn})
	if err != nil {
		return w.describeError(err)
	}
	switch status := sum.StreamDescriptionSummary.StreamStatus; status {
	case types.StreamStatusActive, types.StreamStatusUpdating:
	default:
		return fmt.Errorf("stream %s is %s, not ACTIVE", w.conf.stream, status)
	}
	m, err := w.loadShardMap(ctx)
	if err != nil {
		return err
	}
	w.shardMap.Store(m)

	rctx, cancel := context.WithCancel(context.Background())
	w.stop = cancel
	w.stopped = make(chan struct{})
	go w.refreshLoop(rctx, w.stopped)
	w.log.Infof("Writing to Kinesis stream %s (%d open shards)", w.conf.stream, len(m.ranges))
	return nil
}

func (w *kinesisWriter) describeError(err error) error {
	var nf *types.ResourceNotFoundException
	if errors.As(err, &nf) {
		return fmt.Errorf("stream %s does not exist: %w", w.conf.stream, err)
	}
	return fmt.Errorf("describe stream %s: %w", w.conf.stream, err)
}

// loadShardMap lists the stream's shards, every page, and maps the open ones.
func (w *kinesisWriter) loadShardMap(ctx context.Context) (*shardMap, error) {
	name, arn := w.streamRef()
	in := &kinesis.ListShardsInput{StreamName: name, StreamARN: arn}
	var open []shardBounds
	for {
		out, err := w.client.ListShards(ctx, in)
		if err != nil {
			var nf *types.ResourceNotFoundException
			if errors.As(err, &nf) {
				return nil, fmt.Errorf("list shards of %s: stream does not exist: %w", w.conf.stream, err)
			}
			return nil, fmt.Errorf("list shards of %s: %w", w.conf.stream, err)
		}
		for _, s := range out.Shards {
			if s.SequenceNumberRange != nil && s.SequenceNumberRange.EndingSequenceNumber != nil {
				continue // closed by a split or merge: no longer takes writes
			}
			if s.HashKeyRange == nil {
				continue
			}
			open = append(open, shardBounds{
				id:              aws.ToString(s.ShardId),
				startingHashKey: aws.ToString(s.HashKeyRange.StartingHashKey),
				endingHashKey:   aws.ToString(s.HashKeyRange.EndingHashKey),
			})
		}
		if out.NextToken == nil || *out.NextToken == "" {
			break
		}
		// A paged call names the stream by the token alone.
		in = &kinesis.ListShardsInput{NextToken: out.NextToken}
	}
	if len(open) == 0 {
		return nil, fmt.Errorf("stream %s has no open shards", w.conf.stream)
	}
	now := w.now()
	w.statesMu.Lock()
	defer w.statesMu.Unlock()
	return newShardMap(open, func(id string) *shardState {
		if s, ok := w.states[id]; ok {
			return s
		}
		s := &shardState{id: id, limiter: newShardLimiter(w.conf.limits, now)}
		w.states[id] = s
		return s
	})
}

// refresh reloads the shard map.
func (w *kinesisWriter) refresh(ctx context.Context) error {
	m, err := w.loadShardMap(ctx)
	if err != nil {
		return err
	}
	w.shardMap.Store(m)
	w.metrics.refreshes.Incr(1, w.conf.stream)
	return nil
}

// minPacingWait is the shortest wait for a shard's limiter: 10ms gathers
// about ten records per shard at 1,000 records/s, and keeps the request rate
// sane when many shards are paced at once.
const minPacingWait = 10 * time.Millisecond

// minRefreshGap bounds how often a misprediction can trigger a refresh: while
// a stream is being resharded, every record could report one.
const minRefreshGap = time.Second

// refreshLoop refreshes the shard map every shard_refresh_period and soon
// after a write lands on a shard other than predicted.
func (w *kinesisWriter) refreshLoop(ctx context.Context, done chan<- struct{}) {
	defer close(done)
	ticker := time.NewTicker(w.conf.shardRefreshPeriod)
	defer ticker.Stop()
	var last time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		case <-w.refreshNow:
			if gap := minRefreshGap - time.Since(last); gap > 0 {
				if sleepCtx(ctx, gap) != nil {
					return
				}
			}
		}
		if err := w.refresh(ctx); err != nil && ctx.Err() == nil {
			w.log.Warnf("Refreshing the shard map of %s: %v", w.conf.stream, err)
		}
		last = time.Now()
	}
}

func (w *kinesisWriter) requestRefresh() {
	select {
	case w.refreshNow <- struct{}{}:
	default:
	}
}

// admit asks the record's shard limiter. A record no open shard covers (the
// map is mid-reshard) is sent unpaced; the answer will say where it went.
func (w *kinesisWriter) admit(r *outRecord, now time.Time) (bool, time.Duration) {
	if r.shard == nil {
		return true, 0
	}
	return r.shard.limiter.take(now, r.size)
}

// prepare turns a batch into records, failing alone each message that can
// never be written.
func (w *kinesisWriter) prepare(batch service.MessageBatch, recs []outRecord, pending []int) []int {
	var pkExec, hkExec *service.MessageBatchInterpolationExecutor
	staticPK, pkIsStatic := w.conf.partitionKey.Static()
	if !pkIsStatic && w.conf.partitionKeyMeta == "" {
		pkExec = batch.InterpolationExecutor(w.conf.partitionKey)
	}
	if w.conf.hashKey != nil {
		hkExec = batch.InterpolationExecutor(w.conf.hashKey)
	}
	m := w.shardMap.Load()
	for i, msg := range batch {
		r := &recs[i]
		r.index = i
		if err := w.prepareOne(r, msg, i, pkExec, staticPK, hkExec); err != nil {
			r.err = fmt.Errorf("message %d: %w", i, err)
			r.done = true
			continue
		}
		r.shardMap = m
		r.shard = m.lookup(r.hash)
		pending = append(pending, i)
	}
	return pending
}

func (w *kinesisWriter) prepareOne(r *outRecord, msg *service.Message, i int, pkExec *service.MessageBatchInterpolationExecutor, staticPK string, hkExec *service.MessageBatchInterpolationExecutor) error {
	data, err := msg.AsBytes()
	if err != nil {
		return fmt.Errorf("read message: %w", err)
	}
	pk := staticPK
	if w.conf.partitionKeyMeta != "" {
		pk = metaString(msg, w.conf.partitionKeyMeta)
	} else if pkExec != nil {
		if pk, err = pkExec.TryString(i); err != nil {
			return fmt.Errorf("partition_key interpolation: %w", err)
		}
	}
	if err := checkPartitionKey(pk); err != nil {
		return err
	}
	r.data, r.partitionKey = data, pk
	r.size = len(data) + len(pk)
	if r.size > w.conf.maxRecordSize {
		return fmt.Errorf("record of %d bytes (data %d + partition key %d) is over the max record size of %d bytes (max_record_size)",
			r.size, len(data), len(pk), w.conf.maxRecordSize)
	}
	if hkExec != nil {
		hk, err := hkExec.TryString(i)
		if err != nil {
			return fmt.Errorf("hash_key interpolation: %w", err)
		}
		if hk != "" {
			if r.hash, err = parseHashKey(hk); err != nil {
				return fmt.Errorf("hash key %q: %w", hk, err)
			}
			r.explicitHash = hk
			return nil
		}
	}
	r.hash = partitionHash(pk)
	return nil
}

// WriteBatch writes every message of the batch to Kinesis, retrying only
// the records that failed, and fails alone each record that cannot succeed.
func (w *kinesisWriter) WriteBatch(ctx context.Context, batch service.MessageBatch) error {
	if w.shardMap.Load() == nil {
		return service.ErrNotConnected
	}
	recs := make([]outRecord, len(batch))
	pending := w.prepare(batch, recs, make([]int, 0, len(batch)))

	var (
		req      = make([]int, 0, min(len(pending), maxRequestRecords))
		entries  = make([]types.PutRecordsRequestEntry, 0, cap(req))
		seenKeys map[string]struct{}
		tallies  = map[*shardState]*shardTally{}
	)
	if w.conf.orderPerKey {
		seenKeys = make(map[string]struct{}, len(pending))
	}
	for len(pending) > 0 {
		w.repredict(recs, pending)
		now := w.now()
		var wait time.Duration
		req, wait = packRequest(recs, pending, now, w.conf.orderPerKey, w.admit, req, seenKeys)
		if len(req) == 0 {
			// Wait a little longer than the limiter asks, so that the next
			// request carries a handful of records rather than one.
			if err := w.sleep(ctx, max(wait, minPacingWait)); err != nil {
				return err
			}
			continue
		}
		entries = entries[:0]
		for _, i := range req {
			r := &recs[i]
			e := types.PutRecordsRequestEntry{Data: r.data, PartitionKey: &r.partitionKey}
			if r.explicitHash != "" {
				e.ExplicitHashKey = &r.explicitHash
			}
			entries = append(entries, e)
		}
		if err := w.put(ctx, recs, req, entries, tallies); err != nil {
			return err
		}
		pending = compactPending(recs, pending)
	}
	return w.batchResult(batch, recs)
}

// shardTally counts one response's outcome for one shard.
type shardTally struct {
	records, bytes, throttled int64
}

// put sends one request and books every record's outcome. It returns an
// error only when ctx is done.
func (w *kinesisWriter) put(ctx context.Context, recs []outRecord, req []int, entries []types.PutRecordsRequestEntry, tallies map[*shardState]*shardTally) error {
	name, arn := w.streamRef()
	op := "PutRecords"
	start := time.Now()
	var (
		out *kinesis.PutRecordsOutput
		err error
	)
	if sendsAlone(recs, req) {
		op = "PutRecord"
		out, err = w.putAlone(ctx, &recs[req[0]], entries[0])
	} else {
		out, err = w.client.PutRecords(ctx, &kinesis.PutRecordsInput{Records: entries, StreamName: name, StreamARN: arn}, noSDKRetries)
	}
	w.metrics.requestLatency.Timing(time.Since(start).Nanoseconds(), w.conf.stream)
	now := w.now()
	if err == nil && len(out.Records) != len(entries) {
		err = fmt.Errorf("%s answered %d results for %d records", op, len(out.Records), len(entries))
	}
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if permanent := w.permanentRequestError(err); permanent != nil {
			for _, i := range req {
				recs[i].fail(permanent)
			}
			w.metrics.failed.Incr(int64(len(req)), w.conf.stream)
			w.log.Errorf("%s to %s failed for good: %v", op, w.conf.stream, permanent)
			return nil
		}
		w.log.Warnf("%s to %s failed, retrying %d records: %v", op, w.conf.stream, len(req), err)
		// The records of a failed call retry together, after one delay.
		delay := w.conf.backoffDelay(recs[req[0]].attempts + 1)
		for _, i := range req {
			w.retryLater(&recs[i], now, err, delay)
		}
		return nil
	}

	clear(tallies)
	tally := func(s *shardState) *shardTally {
		t, ok := tallies[s]
		if !ok {
			t = &shardTally{}
			tallies[s] = t
		}
		return t
	}
	mispredicted := 0
	for j, res := range out.Records {
		r := &recs[req[j]]
		if res.ErrorCode == nil {
			r.done = true
			if r.shard == nil || aws.ToString(res.ShardId) != r.shard.id {
				mispredicted++
			}
			if r.shard != nil {
				t := tally(r.shard)
				t.records++
				t.bytes += int64(r.size)
			}
			continue
		}
		code, msg := aws.ToString(res.ErrorCode), aws.ToString(res.ErrorMessage)
		recErr := fmt.Errorf("%s: %s", code, msg)
		switch code {
		case "ProvisionedThroughputExceededException":
			if r.shard != nil {
				tally(r.shard).throttled++
			}
			w.retryLater(r, now, recErr, 0)
		case "InternalFailure", "ServiceUnavailable", "KMSThrottlingException":
			w.retryLater(r, now, recErr, 0)
		default:
			// KMS access and state errors, and codes this output does not
			// know: retrying the same record cannot help.
			r.fail(recErr)
			w.metrics.failed.Incr(1, w.conf.stream)
		}
	}
	for s, t := range tallies {
		if t.throttled > 0 {
			s.limiter.throttled(now)
			w.metrics.throttled.Incr(t.throttled, w.conf.stream, s.id)
		} else {
			s.limiter.succeeded(now)
		}
		if t.records > 0 {
			w.metrics.records.Incr(t.records, w.conf.stream, s.id)
			w.metrics.bytes.Incr(t.bytes, w.conf.stream, s.id)
		}
	}
	if mispredicted > 0 {
		w.metrics.mispredicted.Incr(int64(mispredicted), w.conf.stream)
		w.requestRefresh()
	}
	return nil
}

// putAlone sends one record over the PutRecords budget through PutRecord,
// whose limit is the stream's maximum record size, and answers as PutRecords
// would have for it, so that its outcome is booked the same way: the error
// codes PutRecords reports per record come back as the record's result.
func (w *kinesisWriter) putAlone(ctx context.Context, r *outRecord, e types.PutRecordsRequestEntry) (*kinesis.PutRecordsOutput, error) {
	name, arn := w.streamRef()
	out, err := w.client.PutRecord(ctx, &kinesis.PutRecordInput{
		Data: e.Data, PartitionKey: e.PartitionKey, ExplicitHashKey: e.ExplicitHashKey, StreamName: name, StreamARN: arn,
	}, noSDKRetries)
	if err == nil {
		return &kinesis.PutRecordsOutput{Records: []types.PutRecordsResultEntry{{ShardId: out.ShardId, SequenceNumber: out.SequenceNumber}}}, nil
	}
	var apiErr smithy.APIError
	if !errors.As(err, &apiErr) {
		return nil, err
	}
	switch code := apiErr.ErrorCode(); {
	case code == "ProvisionedThroughputExceededException", code == "InternalFailure",
		code == "ServiceUnavailable", strings.HasPrefix(code, "KMS"):
		return &kinesis.PutRecordsOutput{Records: []types.PutRecordsResultEntry{{
			ErrorCode: aws.String(code), ErrorMessage: aws.String(apiErr.ErrorMessage()),
		}}}, nil
	case code == "ValidationException", code == "InvalidArgumentException":
		// The likeliest cause: max_record_size is above the stream's own.
		return nil, fmt.Errorf("record of %d bytes refused by PutRecord (is max_record_size, %d, above the stream's maximum record size?): %w",
			r.size, w.conf.maxRecordSize, err)
	}
	return nil, err
}

// noSDKRetries turns off the SDK's own retries for PutRecords: this output
// retries only the records that failed, paced by its backoff and limiter.
func noSDKRetries(o *kinesis.Options) { o.Retryer = aws.NopRetryer{} }

// permanentRequestError says whether a failed PutRecords call can never
// succeed as it is, and if so returns the error to report for its records.
func (w *kinesisWriter) permanentRequestError(err error) error {
	var apiErr smithy.APIError
	if !errors.As(err, &apiErr) {
		return nil // network trouble: retry
	}
	switch code := apiErr.ErrorCode(); {
	case code == "ResourceNotFoundException":
		return fmt.Errorf("stream %s does not exist: %w", w.conf.stream, err)
	case code == "AccessDeniedException", code == "UnrecognizedClientException",
		code == "InvalidSignatureException", code == "IncompleteSignature",
		code == "MissingAuthenticationToken", code == "ExpiredTokenException",
		code == "ValidationException", code == "InvalidArgumentException",
		strings.HasPrefix(code, "KMS") && code != "KMSThrottlingException":
		return fmt.Errorf("put records to %s: %w", w.conf.stream, err)
	}
	return nil
}

// retryLater schedules a failed record's next attempt after delay (zero: the
// record's own backoff), or fails it for good once max_retries or
// backoff.max_elapsed_time is spent.
func (w *kinesisWriter) retryLater(r *outRecord, now time.Time, cause error, delay time.Duration) {
	r.attempts++
	if r.firstFailure.IsZero() {
		r.firstFailure = now
	}
	switch {
	case w.conf.maxRetries > 0 && r.attempts > w.conf.maxRetries:
		r.fail(fmt.Errorf("gave up after %d attempts (max_retries %d): %w", r.attempts, w.conf.maxRetries, cause))
	case w.conf.maxElapsed > 0 && now.Sub(r.firstFailure) >= w.conf.maxElapsed:
		r.fail(fmt.Errorf("gave up after retrying for %s (backoff.max_elapsed_time): %w", now.Sub(r.firstFailure).Round(time.Millisecond), cause))
	default:
		if delay <= 0 {
			delay = w.conf.backoffDelay(r.attempts)
		}
		r.notBefore = now.Add(delay)
		w.metrics.retries.Incr(1, w.conf.stream)
		return
	}
	w.metrics.failed.Incr(1, w.conf.stream)
}

func (r *outRecord) fail(err error) {
	r.err = err
	r.done = true
}

// repredict moves pending records onto the current shard map after a refresh.
func (w *kinesisWriter) repredict(recs []outRecord, pending []int) {
	m := w.shardMap.Load()
	for _, i := range pending {
		if r := &recs[i]; r.shardMap != m {
			r.shardMap, r.shard = m, m.lookup(r.hash)
		}
	}
}

// compactPending drops the records that are done, keeping batch order.
func compactPending(recs []outRecord, pending []int) []int {
	kept := pending[:0]
	for _, i := range pending {
		if !recs[i].done {
			kept = append(kept, i)
		}
	}
	return kept
}

// batchResult is nil when every record landed, else a BatchError naming each
// failed message and why.
func (w *kinesisWriter) batchResult(batch service.MessageBatch, recs []outRecord) error {
	var bErr *service.BatchError
	failed := 0
	for i := range recs {
		if recs[i].err == nil {
			continue
		}
		if bErr == nil {
			bErr = service.NewBatchError(batch, recs[i].err)
		}
		bErr.Failed(i, recs[i].err)
		failed++
	}
	if bErr == nil {
		return nil
	}
	w.log.Errorf("%d of %d messages could not be written to %s, the first: %v", failed, len(batch), w.conf.stream, firstErr(recs))
	return bErr
}

func firstErr(recs []outRecord) error {
	for i := range recs {
		if recs[i].err != nil {
			return recs[i].err
		}
	}
	return nil
}

// Close stops the shard-map refresher.
func (w *kinesisWriter) Close(ctx context.Context) error {
	w.mu.Lock()
	stop, stopped := w.stop, w.stopped
	w.stop = nil
	w.mu.Unlock()
	if stop == nil {
		return nil
	}
	stop()
	select {
	case <-stopped:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// sleepCtx waits d or until ctx is done.
func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		d = time.Millisecond
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// jitter spreads d by ±factor so that retries of many records do not align.
func jitter(d time.Duration, factor float64) time.Duration {
	if factor <= 0 {
		return d
	}
	return time.Duration(float64(d) * (1 - factor + 2*factor*rand.Float64()))
}
