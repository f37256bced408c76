package lease

import (
	"fmt"
	"time"

	"github.com/benthos-kinesis/benthos-kinesis/checkpointer"
	"github.com/benthos-kinesis/benthos-kinesis/checkpointer/ack"
)

// Intent is what [Machine.Step] asks the shell to do.
type Intent interface{ isIntent() }

// ReadTable: read the worker rows and, for each stream in Leases, its lease rows; list the
// shards of the streams in List first. Answer with one [TableRead].
type ReadTable struct {
	List   []string
	Leases []string
}

// Op is the kind of a [Write].
type Op uint8

// The writes of docs/LEASES.md "Writes", and the two of the worker rows.
const (
	// OpClaim takes a free shard (checkpointer.Table.Claim on Observed).
	OpClaim Op = iota + 1
	// OpSteal takes a dead owner's shard (Claim on Observed).
	OpSteal
	// OpRetake re-takes a shard this worker holds, after a fence (Claim on Observed, its own row).
	OpRetake
	// OpForce takes a shard whose owner did not hand it over in time (ForceHandoff from Owner at
	// Epoch).
	OpForce
	// OpRequest asks Owner, holding the shard at Epoch, to hand it over (RequestHandoff).
	OpRequest
	// OpHandOver gives the shard to Taker with the final checkpoint Pos (HandOver).
	OpHandOver
	// OpFinish marks the shard read to its end, with the final checkpoint Pos (Finish).
	OpFinish
	// OpRelease gives the shard up with the final checkpoint Pos (Release).
	OpRelease
	// OpCheckpoint writes Pos (Checkpoint).
	OpCheckpoint
	// OpSetStart records where the shard starts, now (SetStart).
	OpSetStart
	// OpRemoveWorker deletes the row of worker Owner, dead at heartbeat Counter (RemoveDeadWorker).
	OpRemoveWorker
)

var opNames = [...]string{
	OpClaim: "claim", OpSteal: "steal", OpRetake: "retake", OpForce: "force", OpRequest: "request",
	OpHandOver: "hand-over", OpFinish: "finish", OpRelease: "release", OpCheckpoint: "checkpoint",
	OpSetStart: "set-start", OpRemoveWorker: "remove-worker",
}

func (o Op) String() string {
	if o > 0 && int(o) < len(opNames) {
		return opNames[o]
	}
	return fmt.Sprintf("Op(%d)", uint8(o))
}

// Write is one conditional write of the lease table. Answer with a [WriteDone] with its ID.
type Write struct {
	ID  uint64
	Op  Op
	Key Key
	// Observed is the row as last read (OpClaim, OpSteal, OpRetake).
	Observed checkpointer.Lease
	// Epoch is the epoch this worker holds (owner's writes) or the observed owner's (OpForce,
	// OpRequest).
	Epoch int64
	// Owner is the observed owner (OpForce, OpRequest) or the dead worker (OpRemoveWorker).
	Owner string
	// Taker is the worker the shard is handed over to (OpHandOver).
	Taker string
	// Pos is the checkpoint to write (HasPos false: leave the row's as it is).
	Pos    ack.Position
	HasPos bool
	// Counter is the dead worker's heartbeat as last seen (OpRemoveWorker).
	Counter int64
}

func (w Write) String() string {
	s := fmt.Sprintf("%s %s", w.Op, w.Key)
	if w.Op == OpRemoveWorker {
		s = fmt.Sprintf("%s %s", w.Op, w.Owner)
	}
	if w.Owner != "" && w.Op != OpRemoveWorker {
		s += " from " + w.Owner
	}
	if w.Taker != "" {
		s += " to " + w.Taker
	}
	return s
}

// StartReading: start a consumer of Key at Epoch. Resume: the shard's consumer (generation
// Gen-1 stopped after an error) carries on where it was; else a new consumer starts at Start.
// Its reports carry Gen.
type StartReading struct {
	Key    Key
	Epoch  int64
	Gen    uint64
	Start  Start
	Resume bool
}

// Start is where a new consumer begins.
type Start struct {
	Kind  StartKind
	At    time.Time    // StartAtTimestamp
	After ack.Position // StartAfter
}

// StopReading: stop the consumer of Key (generation Gen) at once. Drain: then wait, at most
// Timeout (0: no bound), until every batch it delivered is settled, and answer with [Drained].
// Drop: the shard is lost: forget its unacknowledged batches (they must never be checkpointed
// by this worker).
type StopReading struct {
	Key     Key
	Gen     uint64
	Drain   bool
	Timeout time.Duration
	Drop    bool
}

// CollectProgress: answer at once with a [Progress] of every consumer's committable position.
type CollectProgress struct{}

// Committed: the checkpoint Pos of Key (generation Gen) was written.
type Committed struct {
	Key Key
	Gen uint64
	Pos ack.Position
}

// Fence: deliver nothing until [Unfence]. Unfence: deliver again.
type Fence struct{ Reason string }

// Unfence: the heartbeat goes through again and every lease held was re-taken.
type Unfence struct{}

// DeliverUntil: the fencing deadline moved (see [Machine.DeliverUntil]).
type DeliverUntil struct{ At time.Duration }

// Done: the shutdown is complete: every lease released or handed over (or given up on).
type Done struct{}

// Change is one lease change, to log once with structured keys and count.
type Change struct {
	Event  ChangeEvent
	Key    Key
	From   string
	To     string
	Epoch  int64
	Reason string
}

// ChangeEvent names a lease change.
type ChangeEvent string

// The lease changes logged (the "event" key of the log line).
const (
	Claimed      ChangeEvent = "claimed"       // a free shard taken
	Stolen       ChangeEvent = "stolen"        // a dead owner's shard taken
	Forced       ChangeEvent = "forced"        // an owner that did not hand over in time
	Requested    ChangeEvent = "requested"     // asked a live owner for a shard
	HandedOver   ChangeEvent = "handed-over"   // gave a shard to the worker that asked
	Received     ChangeEvent = "received"      // a shard handed over to this worker, or adopted
	Retaken      ChangeEvent = "retaken"       // re-took a lease after a fence
	Lost         ChangeEvent = "lost"          // a shard taken by another worker while held
	Finished     ChangeEvent = "finished"      // a shard read to its end
	Released     ChangeEvent = "released"      // given up on shutdown
	Fenced       ChangeEvent = "fenced"        // delivery paused: no heartbeat
	Unfenced     ChangeEvent = "unfenced"      // delivery resumed
	ReadFailed   ChangeEvent = "read-failed"   // a shard's consumer failed; restarted after a back-off
	StreamFailed ChangeEvent = "stream-failed" // listing or reading a stream's leases failed
)

func (ReadTable) isIntent()       {}
func (Write) isIntent()           {}
func (StartReading) isIntent()    {}
func (StopReading) isIntent()     {}
func (CollectProgress) isIntent() {}
func (Committed) isIntent()       {}
func (Fence) isIntent()           {}
func (Unfence) isIntent()         {}
func (DeliverUntil) isIntent()    {}
func (Done) isIntent()            {}
func (Change) isIntent()          {}
