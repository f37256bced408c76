package lease

import (
	"errors"
	"fmt"
	"time"
)

// Key names one shard of one stream (the stream as configured: its StreamID in the table).
type Key struct{ Stream, Shard string }

func (k Key) String() string { return k.Stream + "/" + k.Shard }

// Stream is one configured stream: its id, and the shards to read when the configuration names
// them (stream:shard); none: every shard, balanced over the fleet.
type Stream struct {
	ID     string
	Shards []string
}

// StartKind says where a shard without a checkpoint is first read.
type StartKind uint8

const (
	// StartOldest reads from the oldest record (TRIM_HORIZON).
	StartOldest StartKind = iota
	// StartLatest reads from the tip (LATEST).
	StartLatest
	// StartAtTimestamp reads from the first record at or after Start.At.
	StartAtTimestamp
	// StartAfter resumes after a checkpoint (Start.After).
	StartAfter
)

// Config is one worker's protocol settings. Durations are on the worker's monotonic clock.
type Config struct {
	// Self is this worker's id (its worker row's ShardID).
	Self    string
	Streams []Stream
	// LeasePeriod: a worker whose heartbeat counter stood still that long is dead.
	LeasePeriod time.Duration
	// HeartbeatPeriod: how often the heartbeat is written and the table read. Default
	// LeasePeriod/3.
	HeartbeatPeriod time.Duration
	// RebalancePeriod: how often hand-offs are requested and the shards re-listed.
	RebalancePeriod time.Duration
	// StealGracePeriod: how long an owner has to hand a requested shard over before the taker
	// forces it; also the bound of the wait for acknowledgements on hand-over and shutdown.
	StealGracePeriod time.Duration
	// CommitPeriod: how often checkpoints that moved are written.
	CommitPeriod time.Duration
	// MaxMoves bounds the hand-off requests of one rebalance.
	MaxMoves int
	// Start is where a shard without a checkpoint starts (StartOldest, StartLatest or
	// StartAtTimestamp). Child shards always start at the oldest record.
	Start     StartKind
	StartTime time.Time // with StartAtTimestamp
	// RestartMin and RestartMax bound the exponential back-off (with jitter) before a failed
	// consumer, or a failing stream's reads, are tried again. Defaults 500ms and 30s.
	RestartMin, RestartMax time.Duration
	// Seed seeds the machine's random choices (balancer tie-breaks, jitter).
	Seed uint64
	// ReadSlack and CommitSlack let a Tick with Beat set do the table read up to ReadSlack
	// before it is due, and the commit up to CommitSlack before it is due. A shell that ticks
	// the machine with every heartbeat it writes then has one wake-up per heartbeat period for
	// all three, rather than one for each (on an idle worker the wake-ups cost more CPU than
	// the calls). ReadSlack must stay under HeartbeatPeriod: reads are at most that much more
	// frequent. NextWake still names the due times. Default 0: no early work.
	ReadSlack, CommitSlack time.Duration
}

// FenceAfter is how long after the send of its last successful heartbeat a worker may still
// deliver: a heartbeat period less than the lease period that observers wait before they judge
// it dead. The gate of plugin/input and the machine both read the deadline it gives
// (Machine.DeliverUntil); nothing else computes it.
func (c Config) FenceAfter() time.Duration { return c.LeasePeriod - c.HeartbeatPeriod }

// withDefaults fills the optional fields.
func (c Config) withDefaults() Config {
	if c.HeartbeatPeriod <= 0 {
		c.HeartbeatPeriod = c.LeasePeriod / 3
	}
	if c.MaxMoves < 1 {
		c.MaxMoves = 1
	}
	if c.RestartMin <= 0 {
		c.RestartMin = 500 * time.Millisecond
	}
	if c.RestartMax < c.RestartMin {
		c.RestartMax = max(30*time.Second, c.RestartMin)
	}
	return c
}

// Validate reports a configuration the protocol cannot run with.
func (c Config) Validate() error {
	c = c.withDefaults()
	switch {
	case c.Self == "":
		return errors.New("lease: Self is empty")
	case len(c.Streams) == 0:
		return errors.New("lease: no stream")
	case c.LeasePeriod <= 0, c.RebalancePeriod <= 0, c.StealGracePeriod <= 0, c.CommitPeriod <= 0:
		return fmt.Errorf("lease: periods must be positive (lease %v, rebalance %v, steal grace %v, commit %v)",
			c.LeasePeriod, c.RebalancePeriod, c.StealGracePeriod, c.CommitPeriod)
	case c.HeartbeatPeriod >= c.LeasePeriod:
		return fmt.Errorf("lease: heartbeat period %v must be shorter than the lease period %v", c.HeartbeatPeriod, c.LeasePeriod)
	case c.ReadSlack < 0 || c.ReadSlack >= c.HeartbeatPeriod:
		return fmt.Errorf("lease: read slack %v must be at least 0 and shorter than the heartbeat period %v", c.ReadSlack, c.HeartbeatPeriod)
	case c.CommitSlack < 0 || c.CommitSlack >= c.CommitPeriod:
		return fmt.Errorf("lease: commit slack %v must be at least 0 and shorter than the commit period %v", c.CommitSlack, c.CommitPeriod)
	}
	return nil
}
