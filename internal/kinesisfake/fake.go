package kinesisfake

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Operation names, as in X-Amz-Target (without the Kinesis_20131202. prefix).
const (
	OpCreateStream          = "CreateStream"
	OpDeleteStream          = "DeleteStream"
	OpDescribeStream        = "DescribeStream"
	OpDescribeStreamSummary = "DescribeStreamSummary"
	OpListShards            = "ListShards"
	OpListStreams           = "ListStreams"
	OpPutRecord             = "PutRecord"
	OpPutRecords            = "PutRecords"
	OpGetShardIterator      = "GetShardIterator"
	OpGetRecords            = "GetRecords"
)

// Error types (the "__type" of an error response, or a record's ErrorCode).
const (
	ErrResourceNotFound       = "ResourceNotFoundException"
	ErrResourceInUse          = "ResourceInUseException"
	ErrInvalidArgument        = "InvalidArgumentException"
	ErrValidation             = "ValidationException"
	ErrSerialization          = "SerializationException"
	ErrProvisionedThroughput  = "ProvisionedThroughputExceededException"
	ErrLimitExceeded          = "LimitExceededException"
	ErrExpiredIterator        = "ExpiredIteratorException"
	ErrExpiredNextToken       = "ExpiredNextTokenException"
	ErrInternalFailure        = "InternalFailure"
	ErrServiceUnavailable     = "ServiceUnavailable"
	ErrUnknownOperation       = "UnknownOperationException"
	ErrAccessDenied           = "AccessDeniedException"
	ErrKMSThrottling          = "KMSThrottlingException"
	errInternalFailureMessage = "Internal service failure."
)

const (
	targetPrefix = "Kinesis_20131202."
	contentType  = "application/x-amz-json-1.1"

	// DefaultMaxRecordsPerRequest is the PutRecords record-count limit.
	DefaultMaxRecordsPerRequest = 500
	// DefaultMaxRequestBytes is the PutRecords limit on data plus partition
	// keys. (AWS raised it to 10 MiB in 2025 together with 10 MiB records;
	// 5 MiB is the limit that holds for streams on the default 1 MiB
	// maximum record size and is what producers should budget for.)
	DefaultMaxRequestBytes = 5 << 20
	// DefaultMaxRecordSize is the limit on one record's data plus partition key.
	DefaultMaxRecordSize = 1 << 20
	// DefaultShardWriteRecords is the per-shard write limit in records/s.
	DefaultShardWriteRecords = 1000
	// DefaultShardWriteBytes is the per-shard write limit in bytes/s.
	DefaultShardWriteBytes = 1 << 20
	// DefaultShardReadCalls is the per-shard GetRecords limit in calls/s.
	DefaultShardReadCalls = 5
	// MaxGetRecordsLimit is the largest GetRecords Limit.
	MaxGetRecordsLimit = 10000
	// MaxGetRecordsBytes is the most data one GetRecords call returns.
	MaxGetRecordsBytes = 10 << 20
	// IteratorTTL is how long a shard iterator stays valid.
	IteratorTTL = 5 * time.Minute
	// NextTokenTTL is how long a ListShards/ListStreams NextToken stays valid.
	NextTokenTTL = 300 * time.Second

	maxBodyBytes = 64 << 20
)

type config struct {
	clock        Clock
	account      string
	region       string
	maxRecords   int
	maxReqBytes  int64
	maxRecSize   int64
	writeRecords int64
	writeBytes   int64
	readCalls    int64
	tokenBucket  bool
	discard      bool
	apiLimits    bool
	streams      []streamSpec
}

type streamSpec struct {
	name   string
	shards int
}

// Option configures a Fake.
type Option func(*config)

// WithClock sets the clock used for limits, arrival timestamps and expiry.
func WithClock(c Clock) Option { return func(o *config) { o.clock = c } }

// WithAccountID sets the account id used in ARNs and messages
// (default 123456789012).
func WithAccountID(id string) Option { return func(o *config) { o.account = id } }

// WithRegion sets the region used in ARNs (default us-east-1).
func WithRegion(r string) Option { return func(o *config) { o.region = r } }

// WithMaxRecordsPerRequest sets the PutRecords record-count limit
// (default 500).
func WithMaxRecordsPerRequest(n int) Option { return func(o *config) { o.maxRecords = n } }

// WithMaxRequestBytes sets the PutRecords limit on the sum of data and
// partition-key bytes (default 5 MiB).
func WithMaxRequestBytes(n int) Option { return func(o *config) { o.maxReqBytes = int64(n) } }

// WithMaxRecordSize sets the limit on one record's data plus partition key
// (default 1 MiB; AWS streams can be raised up to 10 MiB).
func WithMaxRecordSize(n int) Option { return func(o *config) { o.maxRecSize = int64(n) } }

// WithShardWriteLimits sets the per-shard write limits in records/s and
// bytes/s (data plus partition key). A value <= 0 disables that limit.
// Default 1000 records/s and 1 MiB/s.
func WithShardWriteLimits(recordsPerSecond, bytesPerSecond int) Option {
	return func(o *config) {
		o.writeRecords = int64(recordsPerSecond)
		o.writeBytes = int64(bytesPerSecond)
	}
}

// WithoutWriteLimits disables per-shard write throttling.
func WithoutWriteLimits() Option { return WithShardWriteLimits(0, 0) }

// WithReadLimit sets the per-shard GetRecords limit in calls/s (default 5,
// as on AWS). A value <= 0 disables it.
func WithReadLimit(callsPerSecond int) Option {
	return func(o *config) { o.readCalls = int64(callsPerSecond) }
}

// WithoutReadLimit disables the per-shard GetRecords call limit, for
// benchmarks of a reader's own cost.
func WithoutReadLimit() Option { return WithReadLimit(0) }

// WithTokenBucket counts the per-shard limits in token buckets that refill
// continuously and hold one second of burst, instead of the default fixed
// one-second windows aligned to the clock's whole seconds.
func WithTokenBucket() Option { return func(o *config) { o.tokenBucket = true } }

// WithDiscardData makes the fake keep no record payloads: sequence numbers,
// routing, limits and stats work as usual but GetRecords and Records return
// nothing. For long-running write benchmarks.
func WithDiscardData() Option { return func(o *config) { o.discard = true } }

// WithAPIRateLimits enforces the AWS control-plane rate limits:
// CreateStream/DeleteStream/ListStreams 5/s, DescribeStream 10/s,
// DescribeStreamSummary 20/s (per account, LimitExceededException),
// ListShards 1000/s per stream (LimitExceededException) and
// GetShardIterator 5/s per shard (ProvisionedThroughputExceededException).
func WithAPIRateLimits() Option { return func(o *config) { o.apiLimits = true } }

// WithStream creates a stream with the given number of shards up front.
func WithStream(name string, shards int) Option {
	return func(o *config) { o.streams = append(o.streams, streamSpec{name, shards}) }
}

// Fake is an in-process Kinesis Data Streams endpoint. It is an http.Handler;
// serve it with httptest.NewServer or use Start.
type Fake struct {
	cfg   config
	clock Clock

	mu      sync.RWMutex
	streams map[string]*stream
	gen     uint64

	reqID  atomic.Uint64
	idBase string

	// stats
	opCount     [numOps + 1]atomic.Int64
	maxReqRecs  atomic.Int64
	maxReqBytes atomic.Int64
	maxReqBody  atomic.Int64
	errMu       sync.Mutex
	errByType   map[string]int64
	errByOp     map[string]int64

	// API rate limits
	apiMu  sync.Mutex
	apiLim map[string]*limiter

	// faults
	faultMu     sync.Mutex
	faults      []*fault
	faultCount  atomic.Int32
	recordFault atomic.Pointer[RecordFaultFunc]

	bufs sync.Pool // *[]byte
	puts sync.Pool // *putRequest
}

var opNames = [...]string{
	OpCreateStream, OpDeleteStream, OpDescribeStream, OpDescribeStreamSummary,
	OpListShards, OpListStreams, OpPutRecord, OpPutRecords,
	OpGetShardIterator, OpGetRecords,
}

const numOps = len(opNames)

// New returns a Fake with the given options.
func New(opts ...Option) *Fake {
	cfg := config{
		clock:        realClock{},
		account:      "123456789012",
		region:       "us-east-1",
		maxRecords:   DefaultMaxRecordsPerRequest,
		maxReqBytes:  DefaultMaxRequestBytes,
		maxRecSize:   DefaultMaxRecordSize,
		writeRecords: DefaultShardWriteRecords,
		writeBytes:   DefaultShardWriteBytes,
		readCalls:    DefaultShardReadCalls,
	}
	for _, o := range opts {
		o(&cfg)
	}
	var rb [6]byte
	_, _ = rand.Read(rb[:])
	f := &Fake{
		cfg:       cfg,
		clock:     cfg.clock,
		streams:   map[string]*stream{},
		idBase:    hex.EncodeToString(rb[:]),
		errByType: map[string]int64{},
		errByOp:   map[string]int64{},
		apiLim:    map[string]*limiter{},
	}
	for _, s := range cfg.streams {
		if err := f.CreateStream(s.name, s.shards); err != nil {
			panic(fmt.Sprintf("kinesisfake: WithStream(%q, %d): %v", s.name, s.shards, err))
		}
	}
	return f
}

// apiError is a whole-request error.
type apiError struct {
	status int
	typ    string
	msg    string
}

func (e *apiError) Error() string { return e.typ + ": " + e.msg }

func errf(status int, typ, format string, args ...any) *apiError {
	return &apiError{status: status, typ: typ, msg: fmt.Sprintf(format, args...)}
}

func badRequest(typ, format string, args ...any) *apiError {
	return errf(http.StatusBadRequest, typ, format, args...)
}

func (f *Fake) now() time.Time { return f.clock.Now() }

// ServeHTTP implements http.Handler.
func (f *Fake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	target := r.Header.Get("X-Amz-Target")
	op := strings.TrimPrefix(target, targetPrefix)
	opIdx := numOps
	for i, n := range opNames {
		if n == op {
			opIdx = i
			break
		}
	}
	f.opCount[opIdx].Add(1)

	if r.Method != http.MethodPost {
		f.writeError(w, op, errf(http.StatusMethodNotAllowed, ErrUnknownOperation, "method %s not allowed", r.Method))
		return
	}
	if opIdx == numOps || !strings.HasPrefix(target, targetPrefix) {
		f.writeError(w, op, badRequest(ErrUnknownOperation, "unknown operation %q", target))
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/x-amz-json-1.") && !strings.HasPrefix(ct, "application/json") {
		f.writeError(w, op, badRequest(ErrSerialization, "unsupported Content-Type %q", ct))
		return
	}

	bp := f.getBuf()
	defer f.putBuf(bp)
	body, err := readBody(r, (*bp)[:0])
	*bp = body[:0]
	if err != nil {
		f.writeError(w, op, errf(http.StatusRequestEntityTooLarge, ErrSerialization, "%v", err))
		return
	}
	atomicMax(&f.maxReqBody, int64(len(body)))

	if ae := f.takeFault(op); ae != nil {
		f.writeError(w, op, ae)
		return
	}

	out := f.getBuf()
	defer f.putBuf(out)
	var res []byte
	var ae *apiError
	switch op {
	case OpPutRecords:
		res, ae = f.putRecords(body, (*out)[:0])
	case OpPutRecord:
		res, ae = f.putRecord(body, (*out)[:0])
	case OpGetRecords:
		res, ae = f.getRecords(body, (*out)[:0])
	default:
		var v any
		v, ae = f.control(op, body)
		if ae == nil && v != nil {
			var err error
			res, err = json.Marshal(v)
			if err != nil {
				ae = errf(http.StatusInternalServerError, ErrInternalFailure, "%v", err)
			}
		}
	}
	if res != nil && cap(res) > cap(*out) {
		*out = res[:0]
	}
	if ae != nil {
		f.writeError(w, op, ae)
		return
	}
	h := w.Header()
	h.Set("Content-Type", contentType)
	h.Set("X-Amzn-Requestid", f.requestID())
	h.Set("Content-Length", strconv.Itoa(len(res)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(res)
}

func readBody(r *http.Request, buf []byte) ([]byte, error) {
	if r.ContentLength > maxBodyBytes {
		return buf, fmt.Errorf("request body of %d bytes is too large", r.ContentLength)
	}
	if r.ContentLength > 0 && int64(cap(buf)) < r.ContentLength {
		buf = make([]byte, 0, r.ContentLength)
	}
	lr := io.LimitReader(r.Body, maxBodyBytes+1)
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := lr.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			break
		}
		if err != nil {
			return buf, err
		}
	}
	if len(buf) > maxBodyBytes {
		return buf, fmt.Errorf("request body is larger than %d bytes", maxBodyBytes)
	}
	return buf, nil
}

func (f *Fake) writeError(w http.ResponseWriter, op string, ae *apiError) {
	f.errMu.Lock()
	f.errByType[ae.typ]++
	f.errByOp[op]++
	f.errMu.Unlock()
	var b bytes.Buffer
	b.WriteString(`{"__type":`)
	b.Write(appendString(nil, ae.typ))
	b.WriteString(`,"message":`)
	b.Write(appendString(nil, ae.msg))
	b.WriteString(`}`)
	h := w.Header()
	h.Set("Content-Type", contentType)
	h.Set("X-Amzn-Requestid", f.requestID())
	h.Set("X-Amzn-Errortype", ae.typ)
	h.Set("Content-Length", strconv.Itoa(b.Len()))
	w.WriteHeader(ae.status)
	_, _ = w.Write(b.Bytes())
}

func (f *Fake) requestID() string {
	n := f.reqID.Add(1)
	var b [36]byte
	const hexd = "0123456789abcdef"
	copy(b[:], f.idBase[:8])
	b[8] = '-'
	copy(b[9:], f.idBase[8:12])
	b[13] = '-'
	v := n
	for i := 35; i >= 14; i-- {
		if i == 18 || i == 23 {
			b[i] = '-'
			continue
		}
		b[i] = hexd[v&0xf]
		v >>= 4
	}
	return string(b[:])
}

func (f *Fake) getBuf() *[]byte {
	if p, ok := f.bufs.Get().(*[]byte); ok {
		return p
	}
	b := make([]byte, 0, 64<<10)
	return &b
}

func (f *Fake) putBuf(p *[]byte) {
	if cap(*p) > 32<<20 {
		return
	}
	*p = (*p)[:0]
	f.bufs.Put(p)
}

func atomicMax(a *atomic.Int64, v int64) {
	for {
		cur := a.Load()
		if v <= cur || a.CompareAndSwap(cur, v) {
			return
		}
	}
}

// arn returns the ARN of stream name.
func (f *Fake) arn(name string) string {
	return "arn:aws:kinesis:" + f.cfg.region + ":" + f.cfg.account + ":stream/" + name
}

// lookup resolves a stream by name and/or ARN.
func (f *Fake) lookup(name, arn string) (*stream, *apiError) {
	if name == "" && arn == "" {
		return nil, badRequest(ErrValidation, "Either StreamName or StreamARN should be provided.")
	}
	if arn != "" {
		i := strings.LastIndex(arn, ":stream/")
		if !strings.HasPrefix(arn, "arn:") || i < 0 {
			return nil, badRequest(ErrValidation, "1 validation error detected: Value '%s' at 'streamARN' failed to satisfy constraint: Member must satisfy regular expression pattern: arn:aws.*:kinesis:.*:\\d{12}:stream/\\S+", arn)
		}
		an := arn[i+len(":stream/"):]
		if name != "" && name != an {
			return nil, badRequest(ErrInvalidArgument, "StreamARN %s and StreamName %s do not match.", arn, name)
		}
		name = an
	}
	f.mu.RLock()
	s := f.streams[name]
	f.mu.RUnlock()
	if s == nil {
		return nil, badRequest(ErrResourceNotFound, "Stream %s under account %s not found.", name, f.cfg.account)
	}
	return s, nil
}

// ---- fault injection ----

type fault struct {
	op        string
	remaining int
	err       apiError
}

// FailNext makes the next n requests of operation op (one of the Op
// constants, or "*" for any operation) fail before they are processed, with
// the given HTTP status and error type, e.g.
//
//	f.FailNext(kinesisfake.OpPutRecords, 2, 500, kinesisfake.ErrInternalFailure, "")
//	f.FailNext(kinesisfake.OpGetRecords, 1, 400, kinesisfake.ErrProvisionedThroughput, "")
//
// An empty message gets a realistic default. Faults queue up in the order
// they were added.
func (f *Fake) FailNext(op string, n int, status int, errorType, message string) {
	if n <= 0 {
		return
	}
	if message == "" {
		switch errorType {
		case ErrInternalFailure:
			message = errInternalFailureMessage
		case ErrProvisionedThroughput:
			message = "Rate exceeded for stream under account " + f.cfg.account + "."
		default:
			message = "Injected failure."
		}
	}
	f.faultMu.Lock()
	f.faults = append(f.faults, &fault{op: op, remaining: n, err: apiError{status: status, typ: errorType, msg: message}})
	f.faultCount.Store(int32(len(f.faults)))
	f.faultMu.Unlock()
}

// ClearFaults removes all pending FailNext faults and the record fault.
func (f *Fake) ClearFaults() {
	f.faultMu.Lock()
	f.faults = nil
	f.faultCount.Store(0)
	f.faultMu.Unlock()
	f.recordFault.Store(nil)
}

// PendingFaults returns how many injected request failures are still queued.
func (f *Fake) PendingFaults() int {
	f.faultMu.Lock()
	defer f.faultMu.Unlock()
	n := 0
	for _, ft := range f.faults {
		n += ft.remaining
	}
	return n
}

func (f *Fake) takeFault(op string) *apiError {
	if f.faultCount.Load() == 0 {
		return nil
	}
	f.faultMu.Lock()
	defer f.faultMu.Unlock()
	for i, ft := range f.faults {
		if ft.op != op && ft.op != "*" {
			continue
		}
		ft.remaining--
		e := ft.err
		if ft.remaining <= 0 {
			f.faults = append(f.faults[:i:i], f.faults[i+1:]...)
			f.faultCount.Store(int32(len(f.faults)))
		}
		return &e
	}
	return nil
}

// RecordInfo describes a record offered to a RecordFaultFunc. Data is only
// valid during the call.
type RecordInfo struct {
	Stream       string
	ShardID      string
	PartitionKey string
	Data         []byte
}

// RecordFaultFunc decides whether a record of a PutRecords/PutRecord request
// fails. It returns "" to let the record through or an error code such as
// ErrInternalFailure or ErrProvisionedThroughput to fail it (PutRecords fails
// just that record; PutRecord fails the call). It runs under the stream's
// lock, in request order, so it must be quick and must not call the Fake.
type RecordFaultFunc func(RecordInfo) (errorCode string)

// SetRecordFault installs fn as the per-record fault predicate (nil removes
// it).
func (f *Fake) SetRecordFault(fn RecordFaultFunc) {
	if fn == nil {
		f.recordFault.Store(nil)
		return
	}
	f.recordFault.Store(&fn)
}

// FailPartitionKey returns a RecordFaultFunc that fails the first `times`
// records with the given partition key with errorCode.
func FailPartitionKey(partitionKey string, times int, errorCode string) RecordFaultFunc {
	var left atomic.Int64
	left.Store(int64(times))
	return func(r RecordInfo) string {
		if r.PartitionKey != partitionKey {
			return ""
		}
		if left.Add(-1) < 0 {
			return ""
		}
		return errorCode
	}
}

func recordErrorMessage(code, shardID, stream, account string) string {
	switch code {
	case ErrProvisionedThroughput:
		return "Rate exceeded for shard " + shardID + " in stream " + stream + " under account " + account + "."
	case ErrInternalFailure:
		return errInternalFailureMessage
	}
	return "Injected failure."
}

// ---- API rate limits ----

func (f *Fake) apiAllow(key string, limit int64) bool {
	if !f.cfg.apiLimits {
		return true
	}
	now := f.now().UnixNano()
	f.apiMu.Lock()
	defer f.apiMu.Unlock()
	l := f.apiLim[key]
	if l == nil {
		nl := newLimiter(limit, f.cfg.tokenBucket)
		l = &nl
		f.apiLim[key] = l
	}
	l.refresh(now)
	if !l.can(1) {
		return false
	}
	l.take(1)
	return true
}

// ---- Go-level stream management ----

// CreateStream creates a stream with shardCount shards, as the CreateStream
// operation does.
func (f *Fake) CreateStream(name string, shardCount int) error {
	if ae := f.createStream(name, shardCount, "PROVISIONED"); ae != nil {
		return ae
	}
	return nil
}

func (f *Fake) createStream(name string, shardCount int, mode string) *apiError {
	if ae := validateStreamName(name); ae != nil {
		return ae
	}
	if shardCount < 1 {
		return badRequest(ErrValidation, "1 validation error detected: Value '%d' at 'shardCount' failed to satisfy constraint: Member must have value greater than or equal to 1", shardCount)
	}
	if shardCount > 100000 {
		return badRequest(ErrLimitExceeded, "This request would exceed the shard limit for the account %s in %s.", f.cfg.account, f.cfg.region)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.streams[name]; ok {
		return badRequest(ErrResourceInUse, "Stream %s under account %s already exists.", name, f.cfg.account)
	}
	f.gen++
	now := f.now()
	gen := (uint64(now.Unix())%1e10)*1e6 + f.gen%1e6
	f.streams[name] = newStream(name, f.arn(name), gen, now, shardCount, mode, f)
	return nil
}

func validateStreamName(name string) *apiError {
	if len(name) < 1 || len(name) > 128 {
		return badRequest(ErrValidation, "1 validation error detected: Value '%s' at 'streamName' failed to satisfy constraint: Member must have length between 1 and 128", name)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-') {
			return badRequest(ErrValidation, "1 validation error detected: Value '%s' at 'streamName' failed to satisfy constraint: Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+", name)
		}
	}
	return nil
}

// DeleteStream deletes a stream and its records.
func (f *Fake) DeleteStream(name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.streams[name]; !ok {
		return badRequest(ErrResourceNotFound, "Stream %s under account %s not found.", name, f.cfg.account)
	}
	delete(f.streams, name)
	return nil
}

// StreamNames returns the names of all streams, sorted.
func (f *Fake) StreamNames() []string {
	f.mu.RLock()
	names := make([]string, 0, len(f.streams))
	for n := range f.streams {
		names = append(names, n)
	}
	f.mu.RUnlock()
	sort.Strings(names)
	return names
}

// ShardIDs returns the ids of a stream's shards, in order.
func (f *Fake) ShardIDs(streamName string) ([]string, error) {
	s, ae := f.lookup(streamName, "")
	if ae != nil {
		return nil, ae
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ids := make([]string, len(s.shards))
	for i, sh := range s.shards {
		ids[i] = sh.id
	}
	return ids, nil
}

// ShardFor returns the id of the shard that partitionKey routes to.
func (f *Fake) ShardFor(streamName, partitionKey string) (string, error) {
	s, ae := f.lookup(streamName, "")
	if ae != nil {
		return "", ae
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sh := s.route(hashPartitionKey([]byte(partitionKey)))
	if sh == nil {
		return "", badRequest(ErrInternalFailure, "no open shard")
	}
	return sh.id, nil
}

// Record is a stored record, as returned by Records.
type Record struct {
	ShardID                     string
	SequenceNumber              string
	PartitionKey                string
	Data                        []byte
	ApproximateArrivalTimestamp time.Time
}

// Records returns copies of all records stored in a stream, per shard id, in
// the order they were accepted.
func (f *Fake) Records(streamName string) (map[string][]Record, error) {
	s, ae := f.lookup(streamName, "")
	if ae != nil {
		return nil, ae
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string][]Record, len(s.shards))
	for _, sh := range s.shards {
		recs := make([]Record, len(sh.records))
		for i := range sh.records {
			r := &sh.records[i]
			recs[i] = Record{
				ShardID:                     sh.id,
				SequenceNumber:              s.seq(sh.idx, sh.first+uint64(i)),
				PartitionKey:                string(r.pk()),
				Data:                        bytes.Clone(r.data()),
				ApproximateArrivalTimestamp: time.Unix(0, r.arrival),
			}
			if recs[i].Data == nil {
				recs[i].Data = []byte{}
			}
		}
		out[sh.id] = recs
	}
	return out, nil
}

// ShardRecords returns copies of the records stored in one shard, in order.
func (f *Fake) ShardRecords(streamName, shardID string) ([]Record, error) {
	all, err := f.Records(streamName)
	if err != nil {
		return nil, err
	}
	recs, ok := all[shardID]
	if !ok {
		return nil, badRequest(ErrResourceNotFound, "Shard %s in stream %s under account %s does not exist", shardID, streamName, f.cfg.account)
	}
	return recs, nil
}

// Append stores one record directly, bypassing HTTP, validation, limits,
// faults and stats: for seeding streams in reader tests and benchmarks. The
// record is routed by partitionKey like PutRecord and arrives at the clock's
// current time.
func (f *Fake) Append(streamName, partitionKey string, data []byte) (shardID, sequenceNumber string, err error) {
	s, ae := f.lookup(streamName, "")
	if ae != nil {
		return "", "", ae
	}
	pk := []byte(partitionKey)
	h := hashPartitionKey(pk)
	now := f.now().UnixNano()
	s.mu.Lock()
	defer s.mu.Unlock()
	sh := s.route(h)
	if sh == nil {
		return "", "", badRequest(ErrInternalFailure, "no open shard")
	}
	c := sh.store(pk, data, now, f.cfg.discard)
	return sh.id, s.seq(sh.idx, c), nil
}
