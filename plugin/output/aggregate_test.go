package output

import (
	"fmt"
	"strings"
	"testing"

	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/benthos-kinesis/benthos-kinesis/internal/kpl"
)

// entries describes a request's Kinesis records: "agg(a:0 a:1)" for an
// aggregate (checked to decode to its members), the data of a bare one, and
// "<n B>" for data too long to show.
func entries(t *testing.T, req *request) string {
	t.Helper()
	if req == nil {
		return "none"
	}
	var s []string
	for _, r := range req.recs {
		if r.members == nil {
			if len(r.data) > 16 {
				s = append(s, fmt.Sprintf("<%d B>", len(r.data)))
			} else {
				s = append(s, string(r.data))
			}
			continue
		}
		users, err := kpl.Deaggregate(r.data)
		if err != nil || len(users) != len(r.members) {
			t.Fatalf("aggregate of %d members decodes to %d user records: %v", len(r.members), len(users), err)
		}
		var m []string
		for i, u := range users {
			if string(u.Data) != string(r.members[i].data) || u.PartitionKey != r.members[i].partitionKey {
				t.Fatalf("user record %d is %q/%q, want its member's", i, u.PartitionKey, u.Data)
			}
			m = append(m, string(u.Data))
		}
		if r.size != len(r.data)+1 || r.partitionKey != "a" {
			t.Fatalf("aggregate of size %d with key %q, want data+1 and \"a\"", r.size, r.partitionKey)
		}
		s = append(s, "agg("+strings.Join(m, " ")+")")
	}
	return strings.Join(s, " ")
}

// settleAll books every message of req as landed.
func settleAll(d *dispatcher, req *request) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, r := range req.recs {
		r.landed()
		for _, u := range r.members {
			d.settle(u)
		}
		if r.members == nil {
			d.settle(r)
		}
	}
	d.booked(req)
	checkQueues(d)
}

// Records of one shard are packed in queue order; one too large to share an
// aggregate goes bare after the aggregate of those before it, and those
// after it start a new one; a record alone goes as it is.
func TestDispatcherAggregates(t *testing.T) {
	for _, c := range []struct {
		name, keys string
		big        int // the index of a 2,000-byte message; -1: none
		want       string
	}{
		{"one shard", "a h a h", -1, "agg(a:0 h:1 a:2 h:3)"},
		{"alone goes bare", "a", -1, "a:0"},
		{"too large in the middle", "a a a a a", 2, "agg(a:0 a:1) <2000 B> agg(a:3 a:4)"},
		{"too large first, then one", "a a", 0, "<2000 B> a:1"},
	} {
		t.Run(c.name, func(t *testing.T) {
			d := testDispatcher(t, lifted+"aggregation: {enabled: true, max_size: 1024}\n")
			b := msgs(c.keys)
			if c.big >= 0 {
				b[c.big].SetBytes(make([]byte, 2000))
			}
			queueJob(d, b)
			req, _ := nextChecked(d, t0)
			if got := entries(t, req); got != c.want {
				t.Fatalf("request %s, want %s", got, c.want)
			}
			settleAll(d, req)
			if req, _ := nextChecked(d, t0); req != nil {
				t.Fatalf("another request: %s", entries(t, req))
			}
		})
	}
}

// An aggregate is kept within what the shard's byte bucket holds, and the
// limiter takes it as one record of its size.
func TestDispatcherAggregateWithinShardBudget(t *testing.T) {
	// A burst of 5% of 20,000 B/s: 1,000 bytes.
	d := testDispatcher(t, "shard_limits: {records_per_second: 1000, bytes_per_second: 20000}\naggregation: {enabled: true}\n")
	b := make(service.MessageBatch, 30)
	for i := range b {
		b[i] = service.NewMessage(make([]byte, 100))
		b[i].MetaSetMut("key", "a")
	}
	queueJob(d, b)
	req, _ := nextChecked(d, t0)
	if req == nil || len(req.recs) != 1 || req.recs[0].members == nil {
		t.Fatalf("request %s, want one aggregate", entries(t, req))
	}
	if agg := req.recs[0]; agg.size > 1000 || len(agg.members) < 8 {
		t.Fatalf("aggregate of %d bytes and %d messages, want at most the 1,000-byte burst and most of it", agg.size, len(agg.members))
	}
	lim := req.recs[0].shard.limiter
	if _, wait := lim.room(t0, 100); wait == 0 {
		t.Fatal("the limiter has room left after the aggregate took the burst")
	}
}

// After a reshard an aggregate lands on the shard of its first record's
// hash key; the messages that shard does not own are put again, bare.
func TestResendStrays(t *testing.T) {
	states := testStates()
	m, err := newShardMap([]shardBounds{
		{"low", "0", "170141183460469231731687303715884105727"},
		{"high", "170141183460469231731687303715884105728", "340282366920938463463374607431768211455"},
	}, states)
	if err != nil {
		t.Fatal(err)
	}
	low, high := hashKey{Hi: 1}, hashKey{Hi: 1 << 63}
	for _, c := range []struct {
		name   string
		landed string
		hashes []hashKey // the members'; the first routes the aggregate
		want   string    // which are put again
	}{
		{"known shard: those outside its range", "low", []hashKey{low, high, {Hi: 2}, high}, "[false true false true]"},
		{"known shard owning all", "high", []hashKey{high, {Hi: 1<<63 + 5}}, "[false false]"},
		{"unknown shard: all but the first's hash key", "new", []hashKey{low, low, {Hi: 2}}, "[false false true]"},
	} {
		t.Run(c.name, func(t *testing.T) {
			agg := &outRecord{hash: c.hashes[0]}
			for _, h := range c.hashes {
				agg.members = append(agg.members, &outRecord{hash: h})
			}
			agg.landed()
			n := resendStrays(m, agg, c.landed, t0)
			var again []bool
			for _, u := range agg.members {
				again = append(again, !u.done)
				if u.bare != !u.done {
					t.Fatalf("a message put again must go bare")
				}
			}
			if fmt.Sprint(again) != c.want || n != strings.Count(c.want, "true") {
				t.Fatalf("put again %v (%d), want %s", again, n, c.want)
			}
		})
	}
}

func TestAggregationConfig(t *testing.T) {
	env := service.NewEmptyEnvironment()
	if err := Register(env, "aws_kinesis"); err != nil {
		t.Fatal(err)
	}
	linter := env.NewComponentConfigLinter()
	for _, c := range []struct {
		name, yaml, lint string
		size             int // the aggregate limit in use; 0: off
	}{
		{"off by default", "", "", 0},
		{"defaults", "aggregation: {enabled: true}\n", "", defaultAggMaxSize},
		{"capped by max_record_size", "aggregation: {enabled: true, max_size: 4096}\nmax_record_size: 4096\n", "", 4095},
		{"above max_record_size", "aggregation: {enabled: true, max_size: 2000000}\n", "aggregation.max_size must not be above max_record_size", 0},
		{"too small", "aggregation: {enabled: true, max_size: 100}\n", "aggregation.max_size must be between 1024 and 10485760 bytes", 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			yaml := "stream: s\npartition_key: k\n" + c.yaml
			lints, err := linter.LintOutputYAML([]byte("aws_kinesis:\n" + indent(yaml)))
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, l := range lints {
				got = append(got, l.What)
			}
			if c.lint == "" && len(got) > 0 || c.lint != "" && !strings.Contains(strings.Join(got, "\n"), c.lint) {
				t.Fatalf("lints %q, want %q", got, c.lint)
			}
			pConf, err := Spec().ParseYAML(yaml, nil)
			if err != nil {
				t.Fatal(err)
			}
			conf, err := writerConfigFromParsed(pConf)
			if c.lint != "" {
				if err == nil || !strings.Contains(err.Error(), c.lint) {
					t.Fatalf("config error %v, want %q", err, c.lint)
				}
				return
			}
			if err != nil || conf.aggMaxSize != c.size {
				t.Fatalf("aggregate limit %d (%v), want %d", conf.aggMaxSize, err, c.size)
			}
		})
	}
}

func indent(s string) string {
	return "  " + strings.ReplaceAll(strings.TrimSuffix(s, "\n"), "\n", "\n  ") + "\n"
}
