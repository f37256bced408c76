package input

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/benthos-kinesis/benthos-kinesis/internal/kinesisfake"
	"github.com/benthos-kinesis/benthos-kinesis/internal/testenv"
)

func TestPacingNextDelay(t *testing.T) {
	p := defaultPacing // 200ms apart at least; at the tip, on the grid of whole seconds
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	for _, c := range []struct {
		name          string
		lastCall, now time.Duration
		records       int
		millisBehind  int64
		want          time.Duration
	}{
		{"behind, just called", ms(5300), ms(5300), 100, 5000, ms(200)},
		{"behind, call took 150ms", ms(5300), ms(5450), 100, 5000, ms(50)},
		{"behind, call took longer than the interval", ms(5300), ms(5600), 100, 5000, 0},
		{"records at the tip: go again soon", ms(5300), ms(5300), 10, 0, ms(200)},
		{"empty but behind (a gap in the shard)", ms(5300), ms(5300), 0, 1000, ms(200)},
		{"idle at the tip, on the grid", ms(5000), ms(5000), 0, 0, time.Second},
		{"idle at the tip, off the grid: to the next point", ms(5300), ms(5300), 0, 0, ms(700)},
		{"idle at the tip after a slow call", ms(5300), ms(5700), 0, 0, ms(300)},
		{"idle at the tip, call took longer than idle_wait", ms(5300), ms(6500), 0, 0, 0},
		{"idle, a grid point exactly min_interval on", ms(5800), ms(5800), 0, 0, ms(200)},
		{"idle, just before a grid point: early, not late", ms(5900), ms(5900), 0, 0, ms(200)},
		{"idle, the call after that one: on the grid", ms(6100), ms(6100), 0, 0, ms(900)},
	} {
		if got := p.nextDelay(c.lastCall, c.now, c.records, c.millisBehind); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}

// At the tip, whatever the time of the first call and the grid's phase, every gap is within
// [min_interval, idle_wait] and the calls are on the grid from the third on.
func TestPacingIdleGrid(t *testing.T) {
	for _, phase := range []time.Duration{0, 250 * time.Millisecond, 999 * time.Millisecond} {
		p := defaultPacing
		p.phase = phase
		for start := time.Duration(0); start < 3*time.Second; start += 7 * time.Millisecond {
			last := start
			for call := 1; call <= 5; call++ {
				next := last + p.nextDelay(last, last, 0, 0)
				if gap := next - last; gap < p.minInterval || gap > p.idleWait {
					t.Fatalf("phase %v, first call at %v: call %d %v after the one before", phase, start, call+1, gap)
				}
				if call >= 2 && (next-phase)%p.idleWait != 0 {
					t.Fatalf("phase %v, first call at %v: call %d at %v, off the grid", phase, start, call+1, next)
				}
				last = next
			}
		}
	}
}

func TestPacingThrottleDelayBounded(t *testing.T) {
	p := defaultPacing
	for n := 1; n < 40; n++ {
		want := min(p.throttleBase<<min(n-1, 10), p.throttleMax)
		for i := 0; i < 100; i++ {
			if d := p.throttleDelay(n); d < want/2 || d > want {
				t.Fatalf("throttle %d: %v outside [%v, %v]", n, d, want/2, want)
			}
		}
	}
}

// Against the fake that enforces Kinesis' 5 GetRecords calls/s per shard
// (no emulator does): a reader catching up on 25,000 records is never
// throttled, and returns every record once, in order.
func TestReaderStaysUnderReadLimit(t *testing.T) {
	srv := kinesisfake.Start(t, kinesisfake.WithStream("s", 1))
	for i := 0; i < 25000; i++ {
		if _, _, err := srv.Append("s", "k", []byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	r := newShardReader(srv.Client(), "s", "shardId-000000000000", startPosition{}, defaultPacing)
	r.limit = 2000 // more calls, so that pacing matters
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	n := 0
	for n < 25000 {
		f, err := r.next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, rec := range f.records {
			if string(rec.Data) != fmt.Sprint(n) {
				t.Fatalf("record %d is %q", n, rec.Data)
			}
			n++
		}
	}
	st, _ := srv.Stats().Shard("s", "shardId-000000000000")
	if st.GetRecordsThrottled != 0 {
		t.Fatalf("%d of %d GetRecords calls throttled", st.GetRecordsThrottled, st.GetRecordsCalls)
	}
}

// scriptedReads is an in-process stand-in for GetRecords that fails on
// purpose (throttling, expired iterators): kinesalite's iterators expire only
// after five minutes and it never throttles.
type scriptedReads struct {
	mu        sync.Mutex
	failures  []error
	iterators []*kinesis.GetShardIteratorInput
	records   []types.Record
	pos       int
}

func (s *scriptedReads) GetShardIterator(_ context.Context, in *kinesis.GetShardIteratorInput, _ ...func(*kinesis.Options)) (*kinesis.GetShardIteratorOutput, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.iterators = append(s.iterators, in)
	switch in.ShardIteratorType {
	case types.ShardIteratorTypeAfterSequenceNumber:
		for i, r := range s.records {
			if *r.SequenceNumber == *in.StartingSequenceNumber {
				s.pos = i + 1
			}
		}
	default:
		s.pos = 0
	}
	return &kinesis.GetShardIteratorOutput{ShardIterator: aws.String(fmt.Sprint(s.pos))}, nil
}

func (s *scriptedReads) GetRecords(_ context.Context, in *kinesis.GetRecordsInput, _ ...func(*kinesis.Options)) (*kinesis.GetRecordsOutput, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.failures) > 0 {
		err := s.failures[0]
		s.failures = s.failures[1:]
		return nil, err
	}
	var from int
	fmt.Sscan(*in.ShardIterator, &from)
	to := min(from+2, len(s.records))
	out := &kinesis.GetRecordsOutput{Records: s.records[from:to], MillisBehindLatest: aws.Int64(int64(len(s.records) - to))}
	if to < len(s.records) {
		out.NextShardIterator = aws.String(fmt.Sprint(to))
	}
	return out, nil
}

func (s *scriptedReads) ListShards(context.Context, *kinesis.ListShardsInput, ...func(*kinesis.Options)) (*kinesis.ListShardsOutput, error) {
	return nil, errors.New("not scripted")
}

func (s *scriptedReads) DescribeStreamSummary(context.Context, *kinesis.DescribeStreamSummaryInput, ...func(*kinesis.Options)) (*kinesis.DescribeStreamSummaryOutput, error) {
	return nil, errors.New("not scripted")
}

func TestReaderRenewsExpiredIteratorAndBacksOff(t *testing.T) {
	s := &scriptedReads{}
	for i := 1; i <= 6; i++ {
		s.records = append(s.records, types.Record{SequenceNumber: aws.String(fmt.Sprint(i * 10)), Data: []byte{byte(i)}})
	}
	fast := pacing{minInterval: time.Millisecond, idleWait: time.Millisecond, throttleBase: time.Millisecond, throttleMax: 2 * time.Millisecond}
	r := newShardReader(s, "s", "shard-1", startPosition{afterSequence: "10"}, fast)
	ctx := context.Background()

	got := []byte{}
	read := func() error {
		f, err := r.next(ctx)
		for _, rec := range f.records {
			got = append(got, rec.Data...)
		}
		return err
	}
	if err := read(); err != nil { // records 2, 3 (after the checkpoint 10)
		t.Fatal(err)
	}
	s.failures = []error{
		&types.ExpiredIteratorException{Message: aws.String("expired")},
		&types.ProvisionedThroughputExceededException{Message: aws.String("slow down")},
	}
	for {
		if err := read(); errors.Is(err, errShardEnded) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
	}
	if fmt.Sprint(got) != "[2 3 4 5 6]" {
		t.Fatalf("read %v, want [2 3 4 5 6]: each record once, in order", got)
	}
	if len(s.iterators) != 2 || aws.ToString(s.iterators[1].StartingSequenceNumber) != "30" ||
		s.iterators[1].ShardIteratorType != types.ShardIteratorTypeAfterSequenceNumber {
		t.Fatalf("iterators %+v: want the start, then one renewed after 30", s.iterators)
	}
	if err := read(); !errors.Is(err, errShardEnded) {
		t.Fatalf("after the end: %v", err)
	}
}

// A closed parent shard is read to its end on kinesis-local (the emulator
// that splits shards): every record written before the split, then the end.
func TestReaderDrainsClosedShard(t *testing.T) {
	client := testenv.KinesisMock(t)
	stream := testenv.CreateStream(t, client, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for i := 0; i < 50; i++ {
		if _, err := client.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String(stream), PartitionKey: aws.String(fmt.Sprint(i)), Data: []byte(fmt.Sprint(i))}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := client.SplitShard(ctx, &kinesis.SplitShardInput{
		StreamName: aws.String(stream), ShardToSplit: aws.String("shardId-000000000000"),
		NewStartingHashKey: aws.String("170141183460469231731687303715884105728"),
	}); err != nil {
		t.Fatal(err)
	}
	if err := testenv.WaitStreamActive(ctx, client, stream); err != nil {
		t.Fatal(err)
	}
	fast := defaultPacing
	fast.idleWait = 10 * time.Millisecond
	r := newShardReader(client, stream, "shardId-000000000000", startPosition{}, fast)
	n := 0
	for {
		f, err := r.next(ctx)
		if errors.Is(err, errShardEnded) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, rec := range f.records {
			if string(rec.Data) != fmt.Sprint(n) {
				t.Fatalf("record %d is %q", n, rec.Data)
			}
			n++
		}
	}
	if n != 50 {
		t.Fatalf("read %d records of the closed shard, want 50", n)
	}
}

// Found by the fault suite (TestChaosReadErrors): an iterator that expires again at once was
// renewed at once, over and over (about 80 GetShardIterator calls a second per shard, where
// Kinesis allows 5). The first renewal is immediate; repeated ones back off like throttles, and
// a good answer resets the count.
func TestReaderBacksOffFromRepeatedlyExpiringIterators(t *testing.T) {
	s := &scriptedReads{}
	for i := 1; i <= 4; i++ {
		s.records = append(s.records, types.Record{SequenceNumber: aws.String(fmt.Sprint(i * 10)), Data: []byte{byte(i)}})
	}
	expired := func() error { return &types.ExpiredIteratorException{Message: aws.String("expired")} }
	s.failures = []error{expired(), expired(), expired(), expired()}
	pace := pacing{minInterval: time.Millisecond, idleWait: time.Millisecond, throttleBase: time.Second, throttleMax: 8 * time.Second}
	r := newShardReader(s, "s", "shard-1", startPosition{}, pace)
	var waits []time.Duration
	r.sleep = func(_ context.Context, d time.Duration) error {
		waits = append(waits, d)
		return nil
	}
	if _, err := r.next(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Four expiries: the first renewed at once, then back-offs of about 1 s, 2 s, 4 s
	// (jittered between half and all of each).
	if len(waits) != 3 {
		t.Fatalf("waited %v; want three back-offs after four expiries in a row", waits)
	}
	for i, w := range waits {
		want := time.Second << i
		if w < want/2 || w > want {
			t.Fatalf("back-off %d is %v, want between %v and %v", i+1, w, want/2, want)
		}
	}
	if len(s.iterators) != 5 {
		t.Fatalf("%d GetShardIterator calls, want 5 (the start and one per expiry)", len(s.iterators))
	}
	s.failures = []error{expired()}
	waits = nil
	if _, err := r.next(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, w := range waits {
		if w >= time.Second/2 {
			t.Fatalf("after a good answer an expiry backed off %v: the count was not reset", w)
		}
	}
}

// blackHole is a Kinesis that never answers, until the caller's context ends.
type blackHole struct{ scriptedReads }

func (*blackHole) GetRecords(ctx context.Context, _ *kinesis.GetRecordsInput, _ ...func(*kinesis.Options)) (*kinesis.GetRecordsOutput, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

// Found by the fault suite: a GetRecords call into a network black hole waited for as long as
// the network was gone, holding its consumer's partial batch. Each call is bounded by
// callTimeout; the run then ends with an error (and is restarted where it was).
func TestReaderCallTimeout(t *testing.T) {
	pace := defaultPacing
	pace.callTimeout = 10 * time.Millisecond
	r := newShardReader(&blackHole{}, "s", "shard-1", startPosition{}, pace)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := r.next(ctx)
	if !errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil {
		t.Fatalf("got %v; want the call's own deadline, the caller's context alive", err)
	}
}

// Answers are sized to about answerBytes: large records (KPL aggregates) get a smaller Limit,
// small ones keep poll.limit; never below one record.
func TestReaderSizesItsCalls(t *testing.T) {
	recs := func(n, size int) []types.Record {
		out := make([]types.Record, n)
		for i := range out {
			out[i].Data = make([]byte, size)
		}
		return out
	}
	for _, c := range []struct {
		name  string
		recs  []types.Record
		limit int32
		want  int32
	}{
		{"small records keep poll.limit", recs(100, 100), 10000, 10000},
		{"aggregates of 50 KiB", recs(10, 50<<10), 10000, 20},
		{"1 MiB records: one a call", recs(3, 1<<20), 10000, 1},
		{"empty data", recs(5, 0), 500, 500},
		{"under a lower poll.limit", recs(10, 50<<10), 8, 8},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := &shardReader{limit: c.limit}
			r.sizeNextCall(c.recs)
			if r.sized != c.want {
				t.Fatalf("next Limit %d, want %d", r.sized, c.want)
			}
		})
	}
}
