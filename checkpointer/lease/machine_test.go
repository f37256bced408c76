package lease

import (
	"slices"

	"github.com/benthos-kinesis/benthos-kinesis/checkpointer/ack"
	"testing"
	"time"

	"github.com/benthos-kinesis/benthos-kinesis/checkpointer"
)

// testMachine is a machine of worker "w1" on stream "s" with one shard it owns at epoch 2,
// delivering: the first heartbeat went through at 0, a read showed the row at epoch 1, and the
// machine re-took it.
func testMachine(t *testing.T) *Machine {
	t.Helper()
	m, err := NewMachine(Config{
		Self: "w1", Streams: []Stream{{ID: "s"}}, LeasePeriod: 6 * time.Second,
		RebalancePeriod: 5 * time.Second, StealGracePeriod: 10 * time.Second, CommitPeriod: 5 * time.Second,
	}, 0)
	if err != nil {
		t.Fatal(err)
	}
	m.Step(0, Heartbeat{Sent: 0})
	row := checkpointer.Lease{Stream: "s", Shard: "a", Exists: true, ClientID: "w1", Epoch: 1, HasEpoch: true}
	out := m.Step(100*time.Millisecond, TableRead{
		Sent: 50 * time.Millisecond, Received: 100 * time.Millisecond,
		Workers: []checkpointer.WorkerRow{{ID: "w1", Heartbeat: 1}},
		Streams: []StreamRead{{Stream: "s", Listing: true, Listed: []ListedShard{{ID: "a"}}, Leases: []checkpointer.Lease{row}}},
	})
	// Adopted while the machine is not yet delivering: re-taken first, like every lease held
	// across a fence.
	w, ok := first[Write](out)
	if !has[StartReading](out) || !ok || w.Op != OpRetake {
		t.Fatalf("setup: want the shard read and re-taken, got %v", out)
	}
	out = m.Step(150*time.Millisecond, WriteDone{ID: w.ID, Row: ownRow(2)})
	if !has[Unfence](out) || m.Fenced() {
		t.Fatalf("setup: want the machine unfenced, got %v", out)
	}
	return m
}

func ownRow(epoch int64) checkpointer.Lease {
	return checkpointer.Lease{Stream: "s", Shard: "a", Exists: true, ClientID: "w1", Epoch: epoch, HasEpoch: true}
}

func has[T Intent](out []Intent) bool {
	for _, i := range out {
		if _, ok := i.(T); ok {
			return true
		}
	}
	return false
}

func first[T Intent](out []Intent) (T, bool) {
	for _, i := range out {
		if v, ok := i.(T); ok {
			return v, true
		}
	}
	var zero T
	return zero, false
}

// Found by the fault suite's zombie scenario (a reader SIGSTOPped past its lease): on SIGCONT
// the heartbeat goroutine beat at once and its answer reached the machine before the Tick that
// would have fenced; the deadline moved, the machine never fenced, and the reader delivered a
// record of a shard taken from it meanwhile. A heartbeat sent after the deadline must fence
// first, and delivery resumes only after the re-take.
func TestMachineHeartbeatAfterTheDeadlineFencesFirst(t *testing.T) {
	m := testMachine(t)
	deadline, _ := m.DeliverUntil() // 4 s
	thaw := deadline + 6*time.Second
	out := m.Step(thaw+10*time.Millisecond, Heartbeat{Sent: thaw})
	if !m.Fenced() || !has[Fence](out) {
		t.Fatalf("a heartbeat sent %v after the deadline did not fence: %v", thaw-deadline, out)
	}
	if has[Unfence](out) {
		t.Fatalf("unfenced before re-taking: %v", out)
	}
	w, ok := first[Write](out)
	if !ok || w.Op != OpRetake || w.Epoch != 2 {
		t.Fatalf("want a re-take of epoch 2, got %v", out)
	}
	// The shard was taken meanwhile: the re-take is refused, the shard lost, its consumer dropped.
	out = m.Step(thaw+50*time.Millisecond, WriteDone{ID: w.ID, Err: checkpointer.ErrClaimConflict})
	if stop, ok := first[StopReading](out); !ok || !stop.Drop {
		t.Fatalf("want the consumer dropped, got %v", out)
	}
	if ph, _ := m.Phase(Key{"s", "a"}); ph != 0 {
		t.Fatalf("still holds the shard: %v", ph)
	}
}

// Review defect 8: the gate admitted between a successful heartbeat and the re-take. The machine
// moves the deadline on the heartbeat but stays fenced until every lease held is re-taken.
func TestMachineStaysFencedUntilTheRetake(t *testing.T) {
	m := testMachine(t)
	deadline, _ := m.DeliverUntil()
	m.Step(deadline+time.Millisecond, Tick{})
	if !m.Fenced() {
		t.Fatal("not fenced past the deadline")
	}
	back := deadline + 2*time.Second
	out := m.Step(back, Heartbeat{Sent: back - 10*time.Millisecond})
	if !m.Fenced() || has[Unfence](out) {
		t.Fatalf("unfenced on the heartbeat alone: %v", out)
	}
	w, ok := first[Write](out)
	if !ok || w.Op != OpRetake {
		t.Fatalf("want a re-take, got %v", out)
	}
	out = m.Step(back+20*time.Millisecond, TableRead{
		Sent: back + 5*time.Millisecond, Received: back + 20*time.Millisecond,
		Workers: []checkpointer.WorkerRow{{ID: "w1", Heartbeat: 2}},
		Streams: []StreamRead{{Stream: "s", Leases: []checkpointer.Lease{ownRow(2)}}},
	})
	if !m.Fenced() || has[Unfence](out) {
		t.Fatalf("unfenced before the re-take was answered: %v", out)
	}
	out = m.Step(back+30*time.Millisecond, WriteDone{ID: w.ID, Row: ownRow(3)})
	if m.Fenced() || !has[Unfence](out) {
		t.Fatalf("not unfenced after the re-take: %v", out)
	}
	if _, e := m.Phase(Key{"s", "a"}); e != 3 {
		t.Fatalf("epoch %d after the re-take, want 3", e)
	}
}

// A machine never asks for a Tick at once after a Tick (the shell would spin).
func TestMachineNextWakeIsAhead(t *testing.T) {
	m := testMachine(t)
	now := 200 * time.Millisecond
	for range 100 {
		m.Step(now, Tick{})
		next := m.NextWake()
		if next <= now {
			t.Fatalf("NextWake %v at %v", next, now)
		}
		now = next
	}
}

// With more shards than the writes keep up with, the order in which checkpoints are asked for
// decides each shard's gap between two checkpoints. Taken from a map, a shard could go first in
// one round and last in the next (a gap of two rounds: 7.6 s of a 6 s target at 3,000 shards,
// BenchmarkInputSlowTable); asked for stalest first, every gap stays near one round.
func TestMachineCheckpointsStalestFirst(t *testing.T) {
	m, err := NewMachine(Config{
		Self: "w1", Streams: []Stream{{ID: "s"}}, LeasePeriod: 6 * time.Second,
		RebalancePeriod: 5 * time.Second, StealGracePeriod: 10 * time.Second, CommitPeriod: time.Second,
	}, 0)
	if err != nil {
		t.Fatal(err)
	}
	m.Step(0, Heartbeat{Sent: 0})
	var rows []checkpointer.Lease
	var listed []ListedShard
	for _, id := range []string{"a", "b", "c"} {
		rows = append(rows, checkpointer.Lease{Stream: "s", Shard: id, Exists: true, ClientID: "w1", Epoch: 1, HasEpoch: true})
		listed = append(listed, ListedShard{ID: id})
	}
	now := 100 * time.Millisecond
	out := m.Step(now, TableRead{
		Sent: 50 * time.Millisecond, Received: now,
		Workers: []checkpointer.WorkerRow{{ID: "w1", Heartbeat: 1}},
		Streams: []StreamRead{{Stream: "s", Listing: true, Listed: listed, Leases: rows}},
	})
	gens := map[Key]uint64{}
	for _, in := range out {
		switch in := in.(type) {
		case StartReading:
			gens[in.Key] = in.Gen
		case Write:
			r := checkpointer.Lease{Stream: "s", Shard: in.Key.Shard, Exists: true, ClientID: "w1", Epoch: 2, HasEpoch: true}
			m.Step(now, WriteDone{ID: in.ID, Row: r})
		}
	}
	if len(gens) != 3 || m.Fenced() {
		t.Fatalf("setup: want three shards read and the machine delivering, got %v", out)
	}
	pos, err := ack.ParseSequenceNumber("100")
	if err != nil {
		t.Fatal(err)
	}
	// commit asks for the checkpoints of the given shards (in the order given) and answers every
	// write; it returns the order the writes were asked in.
	commit := func(shards ...string) []string {
		now += time.Second
		var p Progress
		for _, id := range shards {
			k := Key{Stream: "s", Shard: id}
			p.Positions = append(p.Positions, ShardPosition{Key: k, Gen: gens[k], Pos: pos})
		}
		var order []string
		for _, in := range m.Step(now, p) {
			if w, ok := in.(Write); ok && w.Op == OpCheckpoint {
				order = append(order, w.Key.Shard)
				m.Step(now, WriteDone{ID: w.ID, Row: checkpointer.Lease{Stream: "s", Shard: w.Key.Shard, Exists: true, ClientID: "w1", Epoch: 2, HasEpoch: true, SequenceNumber: "100"}})
			}
		}
		return order
	}
	if got := commit("c", "b", "a"); !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Fatalf("first round: want the key order a b c among equally stale shards, got %v", got)
	}
	commit("a") // a is now the freshest
	if got := commit("a", "b", "c"); !slices.Equal(got, []string{"b", "c", "a"}) {
		t.Fatalf("want the stalest first (b c a), got %v", got)
	}
}

// A Tick with Beat does the table read and the commit early, within their slack; any other
// event waits for their due times, and NextWake still names those.
func TestMachineBeatTickWorksEarly(t *testing.T) {
	const (
		readDue   = 2050 * time.Millisecond // the first read's send (50ms) + a heartbeat period
		commitDue = 3 * time.Second         // NewMachine's now (0) + the commit period (before the fence at 4s)
	)
	cases := []struct {
		name               string
		at                 time.Duration
		ev                 Event
		wantRead, wantPoll bool
	}{
		{name: "beat tick within the read slack", at: 1500 * time.Millisecond, ev: Tick{Beat: true}, wantRead: true},
		{name: "plain tick within the read slack", at: 1500 * time.Millisecond, ev: Tick{}},
		{name: "heartbeat within the read slack", at: 1500 * time.Millisecond, ev: Heartbeat{Sent: 1400 * time.Millisecond}},
		{name: "beat tick before the read slack", at: 1 * time.Second, ev: Tick{Beat: true}},
		{name: "plain tick when the read is due", at: readDue, ev: Tick{}, wantRead: true},
		{name: "beat tick within the commit slack", at: 2500 * time.Millisecond, ev: Tick{Beat: true}, wantRead: true, wantPoll: true},
		{name: "plain tick within the commit slack", at: 2500 * time.Millisecond, ev: Tick{}, wantRead: true},
		{name: "plain tick when the commit is due", at: commitDue, ev: Tick{}, wantRead: true, wantPoll: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m, err := NewMachine(Config{
				Self: "w1", Streams: []Stream{{ID: "s"}}, LeasePeriod: 6 * time.Second,
				RebalancePeriod: 5 * time.Second, StealGracePeriod: 10 * time.Second, CommitPeriod: 3 * time.Second,
				ReadSlack: time.Second, CommitSlack: time.Second,
			}, 0)
			if err != nil {
				t.Fatal(err)
			}
			m.Step(0, Heartbeat{Sent: 0})
			m.Step(100*time.Millisecond, TableRead{
				Sent: 50 * time.Millisecond, Received: 100 * time.Millisecond,
				Workers: []checkpointer.WorkerRow{{ID: "w1", Heartbeat: 1}},
				Streams: []StreamRead{{Stream: "s", Listing: true}},
			})
			if m.Fenced() {
				t.Fatal("setup: the machine is still fenced")
			}
			if got := m.NextWake(); got != readDue {
				t.Fatalf("NextWake %v, want the read's due time %v", got, readDue)
			}
			out := m.Step(tc.at, tc.ev)
			if has[ReadTable](out) != tc.wantRead || has[CollectProgress](out) != tc.wantPoll {
				t.Fatalf("at %v: %v, want a read %v and a commit %v", tc.at, out, tc.wantRead, tc.wantPoll)
			}
		})
	}
}

func TestConfigValidateSlack(t *testing.T) {
	base := Config{
		Self: "w1", Streams: []Stream{{ID: "s"}}, LeasePeriod: 6 * time.Second,
		RebalancePeriod: 5 * time.Second, StealGracePeriod: 10 * time.Second, CommitPeriod: 5 * time.Second,
	}
	cases := []struct {
		name         string
		read, commit time.Duration
		ok           bool
	}{
		{"none", 0, 0, true},
		{"under the periods", 1999 * time.Millisecond, 4999 * time.Millisecond, true},
		{"read slack a heartbeat period", 2 * time.Second, 0, false},
		{"commit slack a commit period", 0, 5 * time.Second, false},
		{"negative", -time.Millisecond, 0, false},
	}
	for _, tc := range cases {
		c := base
		c.ReadSlack, c.CommitSlack = tc.read, tc.commit
		if err := c.Validate(); (err == nil) != tc.ok {
			t.Errorf("%s: Validate() = %v, want ok %v", tc.name, err, tc.ok)
		}
	}
}
