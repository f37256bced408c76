package lease

import (
	"time"

	"github.com/benthos-kinesis/benthos-kinesis/checkpointer"
	"github.com/benthos-kinesis/benthos-kinesis/checkpointer/ack"
)

// Event is an observation fed to [Machine.Step].
type Event interface{ isEvent() }

// Tick: time passed. The shell sends one when [Machine.NextWake] is due. Beat marks a tick sent
// along with a heartbeat write: the table read and the commit may then be done early (see
// Config.ReadSlack).
type Tick struct{ Beat bool }

// Heartbeat is the result of one heartbeat write, sent at Sent.
type Heartbeat struct {
	Sent time.Duration
	Err  error
}

// ListedShard is one shard as ListShards returns it.
type ListedShard struct {
	ID      string
	Parents []string // ParentShardId and AdjacentParentShardId, when set
	// StartingHashKey and EndingHashKey are the shard's hash key range (decimal), for the
	// shell's readers (user records of a KPL aggregate outside it are skipped); the machine
	// does not use them.
	StartingHashKey, EndingHashKey string
}

// StreamRead is what one read of a stream returned: its shards (when listing was asked for) and
// its lease rows.
type StreamRead struct {
	Stream string
	// Listed, ListErr: set when the read listed the shards.
	Listed  []ListedShard
	Listing bool
	ListErr error
	Leases  []checkpointer.Lease
	Err     error // reading the lease rows failed
}

// TableRead is the result of a [ReadTable]: the worker rows and the streams asked for. Sent is
// when the read was sent (liveness is judged as of then), Received when its answer came back.
type TableRead struct {
	Sent, Received time.Duration
	Workers        []checkpointer.WorkerRow
	WorkersErr     error
	Streams        []StreamRead
}

// WriteDone is the result of one [Write]: Row is the row as written (claims, checkpoints), Err
// wraps checkpointer.ErrClaimConflict or ErrLeaseLost for a failed condition; any other error
// (a timeout, a throttled call) leaves the outcome unknown.
type WriteDone struct {
	ID  uint64
	Row checkpointer.Lease
	Err error
}

// ReadingEnded: a shard's consumer stopped by itself, at the shard's end (ShardEnd) or on a read
// error (Err). Progressed: it read something before it ended (resets the restart back-off).
type ReadingEnded struct {
	Key        Key
	Gen        uint64
	ShardEnd   bool
	Err        error
	Progressed bool
}

// Drained answers a [StopReading] with Drain: every batch the consumer delivered is settled
// (acknowledged, or dropped before the pipeline saw it), or the wait timed out. Pos is the
// checkpoint then (HasPos: there is one), AllAcked whether every delivered batch was
// acknowledged (none in flight, none dropped).
type Drained struct {
	Key      Key
	Gen      uint64
	Pos      ack.Position
	HasPos   bool
	AllAcked bool
	TimedOut bool
}

// Progress answers a [CollectProgress]: the checkpoint each consumer may write, for the shards
// whose checkpoint moved since it was last written.
type Progress struct {
	Positions []ShardPosition
}

// ShardPosition is one shard's committable position.
type ShardPosition struct {
	Key Key
	Gen uint64
	Pos ack.Position
}

// Shutdown: stop reading, hand every shard back (final checkpoint, release) and end with
// [Done].
type Shutdown struct{}

func (Tick) isEvent()         {}
func (Heartbeat) isEvent()    {}
func (TableRead) isEvent()    {}
func (WriteDone) isEvent()    {}
func (ReadingEnded) isEvent() {}
func (Drained) isEvent()      {}
func (Progress) isEvent()     {}
func (Shutdown) isEvent()     {}
