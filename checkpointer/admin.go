package checkpointer

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// Operator writes and reads: what the `kinesis leases` tool (internal/opscli) needs beyond a
// worker's own writes. They follow the same rules as the protocol's writes (docs/LEASES.md): every
// write is conditional on the row as observed, and a write that changes where a shard is read
// from bumps the epoch, so that the owner (or a zombie that still thinks it is the owner) can
// never write its checkpoint over the new one.

// Placement is where an operator puts a shard: a checkpoint, or a start for a shard without one,
// or finished.
type Placement struct {
	// SequenceNumber is the new checkpoint: reading resumes after it. Empty: no checkpoint (the
	// attribute is removed), and the next owner starts at StartAt.
	SequenceNumber string
	// SubSequence is the last user record read inside the KPL aggregate at SequenceNumber; nil:
	// the whole record.
	SubSequence *uint64
	// StartAt is where a shard without a checkpoint starts (AT_TIMESTAMP); zero: removed.
	StartAt time.Time
	// Finished marks the shard read to its end (SHARD_END); it also frees it.
	Finished bool
	// KeepOwner keeps the row's owner (a live owner overruled with --force): at the new epoch
	// its writes at the old one fail, and at its next read of the table it sees the row naming
	// it at an epoch it does not hold, drops what it had in flight, and reads the shard again
	// from the new position. Without KeepOwner the shard is freed (ClientID removed).
	KeepOwner bool
	// IgnoreCheckpoint drops the condition on the observed checkpoint and start: a live owner
	// moves its checkpoint every commit period, which must not make a forced write fail. The
	// condition on owner and epoch is always there.
	IgnoreCheckpoint bool
}

// Place writes p into the shard row observed (as read by Get or Leases; Exists false for a
// shard without a row). An existing row is updated on condition that its owner and epoch (and,
// unless p.IgnoreCheckpoint, its checkpoint, sub-sequence and start) are still as observed; the
// write sets Epoch = observed.Epoch+1, removes any hand-off request and frees the shard unless
// p.KeepOwner. A shard without a row gets one with a conditional put (attribute_not_exists), with
// no owner and no epoch, as a new row of the built-in input. It returns the row as written. A
// failed condition wraps ErrClaimConflict and says what the row holds now.
func (t *Table) Place(ctx context.Context, observed Lease, p Placement) (Lease, error) {
	stream, shard := observed.Stream, observed.Shard
	op := fmt.Sprintf("move shard %s of %s", shard, stream)
	if err := checkShard(stream, shard); err != nil {
		return Lease{}, fmt.Errorf("%s: %w", op, err)
	}
	if p.SequenceNumber == "" && p.SubSequence != nil {
		return Lease{}, fmt.Errorf("%s: a sub-sequence number without a sequence number", op)
	}
	startAt := func() types.AttributeValue {
		return sAttr(p.StartAt.UTC().Format(time.RFC3339Nano))
	}

	if !observed.Exists {
		item := key(stream, shard)
		if p.SequenceNumber != "" {
			item[AttrSequenceNumber] = sAttr(p.SequenceNumber)
			if p.SubSequence != nil {
				item[AttrSubSequence] = numberAttr(*p.SubSequence)
			}
		}
		if !p.StartAt.IsZero() {
			item[AttrStartAt] = startAt()
		}
		if p.Finished {
			item[AttrFinished] = &types.AttributeValueMemberBOOL{Value: true}
		}
		if err := t.putNew(ctx, item); err != nil {
			return t.failed(ctx, op, stream, shard, err, ErrClaimConflict, nil)
		}
		return parseLease(item)
	}

	var e expr
	e.asObserved(observed)
	if !p.IgnoreCheckpoint {
		e.condString(AttrSequenceNumber, "oldseq", observed.SequenceNumber)
		if observed.SubSequence == nil {
			e.cond("attribute_not_exists(" + e.name(AttrSubSequence) + ")")
		} else {
			e.cond(e.name(AttrSubSequence) + " = " + e.value("oldsub", numberAttr(*observed.SubSequence)))
		}
		if observed.StartAt.IsZero() {
			e.cond("attribute_not_exists(" + e.name(AttrStartAt) + ")")
		}
		// A StartAt that is there is compared by its parsed time only through the read-back:
		// its text may carry another precision than ours. Only an owner writes it, and only
		// when it has none, so "there" is all that can change.
	}

	next := observed.Epoch + 1
	e.set(e.name(AttrEpoch) + " = " + e.value("next", numberAttr(next)))
	keep := p.KeepOwner && observed.ClientID != "" && !p.Finished
	if !keep {
		e.remove(e.name(AttrClientID))
	}
	e.removeHandoff()
	if p.SequenceNumber != "" {
		e.setCheckpoint(p.SequenceNumber, p.SubSequence)
	} else {
		e.remove(e.name(AttrSequenceNumber))
		e.remove(e.name(AttrSubSequence))
	}
	if p.StartAt.IsZero() {
		e.remove(e.name(AttrStartAt))
	} else {
		e.set(e.name(AttrStartAt) + " = " + e.value("startAt", startAt()))
	}
	if p.Finished {
		e.set(e.name(AttrFinished) + " = " + e.value("finished", &types.AttributeValueMemberBOOL{Value: true}))
	} else {
		e.remove(e.name(AttrFinished))
	}
	owner := ""
	if keep {
		owner = observed.ClientID
	}
	// A retry of this very write after a lost answer fails its condition (the epoch moved): the
	// row as placed, at the next epoch, is a success.
	done := func(l Lease) bool {
		return l.ClientID == owner && l.HasEpoch && l.Epoch == next && l.Finished == p.Finished &&
			l.SequenceNumber == p.SequenceNumber && checkpointIs(l, p.SequenceNumber, p.SubSequence) &&
			l.StartAt.Equal(p.StartAt) && l.HandoffTo == ""
	}
	return t.update(ctx, op, stream, shard, &e, ErrClaimConflict, done)
}

// condString is the condition "attribute is v", or "attribute is absent" when v is empty.
func (e *expr) condString(attr, ph, v string) {
	if v == "" {
		e.cond("attribute_not_exists(" + e.name(attr) + ")")
		return
	}
	e.cond(e.name(attr) + " = " + e.value(ph, sAttr(v)))
}

// WithdrawHandoff removes this handle's own hand-off request from a shard, on condition that the
// owner and epoch are still the ones it asked and the request is still its own. A failed
// condition wraps ErrClaimConflict (the owner answered, or the row changed).
func (t *Table) WithdrawHandoff(ctx context.Context, stream, shard, owner string, epoch int64) error {
	op := fmt.Sprintf("withdraw the hand-off request for shard %s of %s", shard, stream)
	if err := checkShard(stream, shard); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	var e expr
	e.cond(e.name(AttrClientID) + " = " + e.value("owner", sAttr(owner)))
	e.epochIs(epoch)
	e.cond(e.name(AttrHandoffTo) + " = " + e.value("me", sAttr(t.worker)))
	e.removeHandoff()
	_, err := t.update(ctx, op, stream, shard, &e, ErrClaimConflict, nil)
	return err
}

// Liveness is what a watch of the worker rows concluded about one worker.
type Liveness struct {
	ID string
	// Alive: its heartbeat counter changed during the watch.
	Alive bool
	// HasRow: it had a worker row at the end of the watch (Row). An owner without one is a
	// client of the built-in input, or a worker that has left.
	HasRow bool
	Row    WorkerRow
	// Still is how long its counter (or its absence) was watched without a change; for a dead
	// worker at least the protocol's threshold.
	Still time.Duration
}

// WatchWorkers judges the workers the way a worker of the fleet does (docs/LEASES.md,
// "Liveness"; checkpointer/lease's liveness is the reference) from the worker rows, read every
// poll: a worker whose counter changes is alive; one whose counter stands still for leasePeriod
// less three quarters of a heartbeat period (leasePeriod/3), counted from the answer that showed
// it, as of the send time of a later read, is dead; an id of owners without a worker row is dead
// once no row was seen for it during leasePeriod. A worker seen for the first time is not judged
// alive on that sight (a fleet's observer does, with its own history of the row; a one-off watch
// has none and must not call a dead worker alive). It returns once every worker with a row and
// every id of owners is judged, or with ctx's error.
func (t *Table) WatchWorkers(ctx context.Context, owners []string, leasePeriod, poll time.Duration) (map[string]Liveness, error) {
	if leasePeriod <= 0 || poll <= 0 {
		return nil, fmt.Errorf("watch workers: lease period %v and poll %v must be positive", leasePeriod, poll)
	}
	still := leasePeriod - (leasePeriod/3)*3/4
	type sighting struct {
		row     WorkerRow
		since   time.Time // when the answer showing its current counter came
		missing time.Time // no row since (the send time of the read that showed none)
		decided bool
		alive   bool
	}
	seen := map[string]*sighting{}
	for _, id := range owners {
		if id != "" {
			seen[id] = &sighting{}
		}
	}
	for first := true; ; first = false {
		sent := time.Now()
		rows, err := t.Workers(ctx)
		if err != nil {
			return nil, err
		}
		received := time.Now()
		present := map[string]bool{}
		for _, w := range rows {
			present[w.ID] = true
			s := seen[w.ID]
			switch {
			case s == nil:
				seen[w.ID] = &sighting{row: w, since: received}
			case s.decided:
				s.row = w
			case s.since.IsZero():
				s.row, s.since, s.missing = w, received, time.Time{} // a row appeared
			case s.row.Heartbeat != w.Heartbeat:
				s.row, s.decided, s.alive = w, true, true
			default:
				s.row = w
				if sent.Sub(s.since) >= still {
					s.decided = true
				}
			}
		}
		pending := false
		for id, s := range seen {
			if present[id] || s.decided {
				if !s.decided {
					pending = true
				}
				continue
			}
			// No row (never, or no more): dead once none was seen during a lease period.
			if !s.since.IsZero() || first {
				s.since, s.missing, s.row = time.Time{}, sent, WorkerRow{}
			} else if s.missing.IsZero() {
				s.missing = sent
			}
			if sent.Sub(s.missing) >= leasePeriod {
				s.decided = true
			} else {
				pending = true
			}
		}
		if !pending {
			out := make(map[string]Liveness, len(seen))
			now := time.Now()
			for id, s := range seen {
				l := Liveness{ID: id, Alive: s.alive, HasRow: present[id], Row: s.row}
				switch {
				case s.alive:
				case present[id]:
					l.Still = now.Sub(s.since)
				default:
					l.Still = now.Sub(s.missing)
				}
				out[id] = l
			}
			return out, nil
		}
		timer := time.NewTimer(poll)
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil, fmt.Errorf("watch the worker rows of dynamodb table %q: %w", t.name, ctx.Err())
		case <-timer.C:
		}
	}
}

// SortedIDs returns the ids of a WatchWorkers result in order.
func SortedIDs(m map[string]Liveness) []string {
	ids := make([]string, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// IsConflict reports whether err is a failed condition of a write (ErrClaimConflict or
// ErrLeaseLost): the row is not as the caller observed it.
func IsConflict(err error) bool {
	return errors.Is(err, ErrClaimConflict) || errors.Is(err, ErrLeaseLost)
}
