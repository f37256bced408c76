package checkpointer

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

var (
	// ErrLeaseLost: a write by the owner (Checkpoint, Finish, HandOver, Release) failed its
	// condition: this worker no longer owns the shard at its epoch. Stop the shard's reader, drop
	// its unacknowledged batches, never write its checkpoint again.
	ErrLeaseLost = errors.New("lease lost: the shard is no longer owned by this worker at this epoch")
	// ErrClaimConflict: a write by a taker (Claim, RequestHandoff, ForceHandoff) failed its
	// condition: the row changed since it was observed. Re-read and plan again.
	ErrClaimConflict = errors.New("claim conflict: the row changed since it was observed")
)

// Claim takes a shard: a free one (no row, a released row, a built-in row without ClientID) or a
// dead owner's (observed.ClientID is the dead owner). observed is the row as last read (Leases),
// or a Lease with Exists false for a shard with no row, which is claimed with a conditional put
// (attribute_not_exists(ShardID)). The condition is on the observed owner and epoch
// (Epoch = :e, or attribute_not_exists(Epoch) when the observed row had none); the write sets
// ClientID = this worker, Epoch = observed.Epoch+1 and LeaseTimeout, and removes any hand-off
// request. It returns the row as written. A failed condition wraps ErrClaimConflict. The
// condition does not look at Finished: the caller does not claim finished shards.
func (t *Table) Claim(ctx context.Context, stream, shard string, observed Lease) (Lease, error) {
	op := fmt.Sprintf("claim shard %s of %s", shard, stream)
	if err := checkShard(stream, shard); err != nil {
		return Lease{}, fmt.Errorf("%s: %w", op, err)
	}
	if observed.Exists && (observed.Stream != stream || observed.Shard != shard) {
		return Lease{}, fmt.Errorf("%s: the observed row is shard %s of %s", op, observed.Shard, observed.Stream)
	}
	next := observed.Epoch + 1
	mine := func(l Lease) bool { return l.ClientID == t.worker && l.HasEpoch && l.Epoch == next }
	timeout := t.leaseTimeout()

	if !observed.Exists {
		item := key(stream, shard)
		item[AttrClientID] = &types.AttributeValueMemberS{Value: t.worker}
		item[AttrEpoch] = numberAttr(next)
		item[AttrLeaseTimeout] = &types.AttributeValueMemberS{Value: timeout}
		if err := t.putNew(ctx, item); err != nil {
			return t.failed(ctx, op, stream, shard, err, ErrClaimConflict, mine)
		}
		l, err := parseLease(item)
		if err != nil {
			return Lease{}, fmt.Errorf("%s: %w", op, err)
		}
		return l, nil
	}

	var e expr
	e.asObserved(observed)
	e.setOwner(t.worker, next, timeout)
	e.removeHandoff()
	return t.update(ctx, op, stream, shard, &e, ErrClaimConflict, mine)
}

// Checkpoint moves the checkpoint of a shard this worker owns at epoch: SequenceNumber = seq and
// SubSequence = *subSeq (removed when nil), on condition ClientID = this worker AND
// Epoch = epoch. It returns the row as written, so the owner sees a HandoffTo. seq must not be
// empty. The condition cannot compare sequence numbers (decimal strings of varying length): the
// caller only writes forward. A failed condition wraps ErrLeaseLost.
func (t *Table) Checkpoint(ctx context.Context, stream, shard string, epoch int64, seq string, subSeq *uint64) (Lease, error) {
	op := fmt.Sprintf("checkpoint shard %s of %s", shard, stream)
	if err := checkShard(stream, shard); err != nil {
		return Lease{}, fmt.Errorf("%s: %w", op, err)
	}
	if seq == "" {
		return Lease{}, fmt.Errorf("%s: empty sequence number", op)
	}
	var e expr
	e.ownedBy(t.worker, epoch)
	e.setCheckpoint(seq, subSeq)
	// No read-back: a retried checkpoint passes the same condition again.
	return t.update(ctx, op, stream, shard, &e, ErrLeaseLost, nil)
}

// SetStart records where a shard that has no checkpoint starts (see
// Lease.StartAt), on condition ClientID = this worker AND Epoch = epoch AND
// the row has neither a checkpoint nor a start yet. It returns the row: when
// another start was already recorded, that one holds. A failed ownership
// condition wraps ErrLeaseLost.
func (t *Table) SetStart(ctx context.Context, stream, shard string, epoch int64, at time.Time) (Lease, error) {
	op := fmt.Sprintf("set the start of shard %s of %s", shard, stream)
	if err := checkShard(stream, shard); err != nil {
		return Lease{}, fmt.Errorf("%s: %w", op, err)
	}
	var e expr
	e.ownedBy(t.worker, epoch)
	e.cond("attribute_not_exists(" + e.name(AttrSequenceNumber) + ")")
	e.cond("attribute_not_exists(" + e.name(AttrStartAt) + ")")
	e.set(e.name(AttrStartAt) + " = " + e.value("startAt", &types.AttributeValueMemberS{Value: at.UTC().Format(time.RFC3339Nano)}))
	l, err := t.update(ctx, op, stream, shard, &e, ErrLeaseLost, func(l Lease) bool {
		// Still ours, and a start or a checkpoint is there: use the row.
		return l.ClientID == t.worker && l.Epoch == epoch && (!l.StartAt.IsZero() || l.SequenceNumber != "")
	})
	return l, err
}

// Finish marks a shard this worker owns at epoch as read to its end with everything
// acknowledged: Finished = true, the final checkpoint (unchanged when seq is empty), ClientID and
// any hand-off request removed, epoch kept. A failed condition wraps ErrLeaseLost.
func (t *Table) Finish(ctx context.Context, stream, shard string, epoch int64, seq string, subSeq *uint64) error {
	op := fmt.Sprintf("finish shard %s of %s", shard, stream)
	if err := checkShard(stream, shard); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	var e expr
	e.ownedBy(t.worker, epoch)
	e.setCheckpoint(seq, subSeq)
	e.set(e.name(AttrFinished) + " = " + e.value("finished", &types.AttributeValueMemberBOOL{Value: true}))
	e.remove(e.name(AttrClientID))
	e.removeHandoff()
	done := func(l Lease) bool {
		return l.Finished && l.ClientID == "" && l.HasEpoch && l.Epoch == epoch && checkpointIs(l, seq, subSeq)
	}
	_, err := t.update(ctx, op, stream, shard, &e, ErrLeaseLost, done)
	return err
}

// RequestHandoff asks owner, which holds the shard at epoch, to hand it over to this worker:
// HandoffTo = this worker, HandoffEpoch = epoch, on condition ClientID = owner AND
// Epoch = epoch AND (no request yet OR HandoffTo = this worker). Epoch 0 matches a row without
// Epoch. A failed condition wraps ErrClaimConflict.
func (t *Table) RequestHandoff(ctx context.Context, stream, shard, owner string, epoch int64) error {
	op := fmt.Sprintf("request hand-off of shard %s of %s from %s", shard, stream, owner)
	if err := checkShard(stream, shard); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	if owner == "" || owner == t.worker {
		return fmt.Errorf("%s: invalid owner", op)
	}
	var e expr
	e.cond(e.name(AttrClientID) + " = " + e.value("owner", sAttr(owner)))
	e.epochIs(epoch)
	me := e.value("me", sAttr(t.worker))
	ht := e.name(AttrHandoffTo)
	e.cond("(attribute_not_exists(" + ht + ") OR " + ht + " = " + me + ")")
	e.set(ht + " = " + me)
	e.set(e.name(AttrHandoffEpoch) + " = " + e.value("epoch", numberAttr(epoch)))
	_, err := t.update(ctx, op, stream, shard, &e, ErrClaimConflict, nil)
	return err
}

// HandOver gives a shard this worker owns at epoch to taker, which requested it: the final
// checkpoint (unchanged when seq is empty), ClientID = taker, Epoch = epoch+1, LeaseTimeout,
// hand-off request removed, on condition ClientID = this worker AND Epoch = epoch AND
// HandoffTo = taker. A failed condition wraps ErrLeaseLost.
func (t *Table) HandOver(ctx context.Context, stream, shard string, epoch int64, taker, seq string, subSeq *uint64) error {
	op := fmt.Sprintf("hand over shard %s of %s to %s", shard, stream, taker)
	if err := checkShard(stream, shard); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	if taker == "" || taker == t.worker {
		return fmt.Errorf("%s: invalid taker", op)
	}
	var e expr
	e.ownedBy(t.worker, epoch)
	e.cond(e.name(AttrHandoffTo) + " = " + e.value("taker", sAttr(taker)))
	e.setCheckpoint(seq, subSeq)
	e.setOwner(taker, epoch+1, t.leaseTimeout())
	e.removeHandoff()
	// The taker forcing the hand-off leaves the same owner and epoch; the checkpoint tells them
	// apart unless the taker has already moved it (then this reports ErrLeaseLost, which is
	// also the truth for this worker: the shard is gone).
	done := func(l Lease) bool {
		return l.ClientID == taker && l.HasEpoch && l.Epoch == epoch+1 && checkpointIs(l, seq, subSeq)
	}
	_, err := t.update(ctx, op, stream, shard, &e, ErrLeaseLost, done)
	return err
}

// ForceHandoff takes a shard whose owner did not answer this worker's hand-off request within
// steal_grace_period (on the taker's clock): ClientID = this worker, Epoch = epoch+1, LeaseTimeout,
// request removed, on condition ClientID = owner AND Epoch = epoch AND HandoffTo = this worker.
// It returns the row as written. When the owner handed the shard over to this worker just before
// (the two race at the timeout), the condition fails but the row already says this worker owns
// it at epoch+1: that is a success, and the returned row holds the owner's final checkpoint. A
// failed condition wraps ErrClaimConflict.
func (t *Table) ForceHandoff(ctx context.Context, stream, shard, owner string, epoch int64) (Lease, error) {
	op := fmt.Sprintf("force hand-off of shard %s of %s from %s", shard, stream, owner)
	if err := checkShard(stream, shard); err != nil {
		return Lease{}, fmt.Errorf("%s: %w", op, err)
	}
	if owner == "" || owner == t.worker {
		return Lease{}, fmt.Errorf("%s: invalid owner", op)
	}
	var e expr
	e.cond(e.name(AttrClientID) + " = " + e.value("owner", sAttr(owner)))
	e.epochIs(epoch)
	e.cond(e.name(AttrHandoffTo) + " = " + e.value("me", sAttr(t.worker)))
	e.setOwner(t.worker, epoch+1, t.leaseTimeout())
	e.removeHandoff()
	mine := func(l Lease) bool { return l.ClientID == t.worker && l.HasEpoch && l.Epoch == epoch+1 }
	return t.update(ctx, op, stream, shard, &e, ErrClaimConflict, mine)
}

// Release gives up a shard this worker owns at epoch (graceful shutdown): the final checkpoint
// (unchanged when seq is empty), ClientID and any hand-off request removed, epoch kept, on
// condition ClientID = this worker AND Epoch = epoch. A failed condition wraps ErrLeaseLost.
func (t *Table) Release(ctx context.Context, stream, shard string, epoch int64, seq string, subSeq *uint64) error {
	op := fmt.Sprintf("release shard %s of %s", shard, stream)
	if err := checkShard(stream, shard); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	var e expr
	e.ownedBy(t.worker, epoch)
	e.setCheckpoint(seq, subSeq)
	e.remove(e.name(AttrClientID))
	e.removeHandoff()
	done := func(l Lease) bool {
		return l.ClientID == "" && !l.Finished && l.HasEpoch && l.Epoch == epoch && checkpointIs(l, seq, subSeq)
	}
	_, err := t.update(ctx, op, stream, shard, &e, ErrLeaseLost, done)
	return err
}

// update runs a conditional UpdateItem returning the new row.
func (t *Table) update(ctx context.Context, op, stream, shard string, e *expr, sentinel error, done func(Lease) bool) (Lease, error) {
	out, err := t.api.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 aws.String(t.name),
		Key:                       key(stream, shard),
		UpdateExpression:          aws.String(e.update()),
		ConditionExpression:       aws.String(strings.Join(e.conds, " AND ")),
		ExpressionAttributeNames:  e.names,
		ExpressionAttributeValues: e.values,
		ReturnValues:              types.ReturnValueAllNew,
	})
	if err != nil {
		return t.failed(ctx, op, stream, shard, err, sentinel, done)
	}
	l, err := parseLease(out.Attributes)
	if err != nil {
		return Lease{}, fmt.Errorf("%s: written, but the new row of dynamodb table %q does not parse: %w", op, t.name, err)
	}
	return l, nil
}

// failed turns the error of a conditional write into the caller's error. On a failed condition
// it reads the row back: when done says the row is already what this write meant (an earlier
// attempt of the same call was applied and its answer lost, so the SDK's retry failed the
// condition), the write succeeded; otherwise the error wraps sentinel and says what the row holds.
func (t *Table) failed(ctx context.Context, op, stream, shard string, err, sentinel error, done func(Lease) bool) (Lease, error) {
	var ccf *types.ConditionalCheckFailedException
	if !errors.As(err, &ccf) {
		return Lease{}, fmt.Errorf("%s: dynamodb table %q: %w", op, t.name, err)
	}
	cur, gerr := t.get(ctx, stream, shard)
	if gerr != nil {
		return Lease{}, fmt.Errorf("%s: %w (dynamodb table %q; reading the row back failed: %v)", op, sentinel, t.name, gerr)
	}
	if done != nil && cur.Exists && done(cur) {
		return cur, nil
	}
	return Lease{}, fmt.Errorf("%s: %w (dynamodb table %q now holds %s)", op, sentinel, t.name, cur)
}

func (t *Table) leaseTimeout() string {
	return t.now().Add(t.leasePeriod).UTC().Format(time.RFC3339Nano)
}

// checkpointIs reports whether l holds the checkpoint seq/subSeq; an empty seq (checkpoint left
// unchanged) matches any.
func checkpointIs(l Lease, seq string, subSeq *uint64) bool {
	if seq == "" {
		return true
	}
	if l.SequenceNumber != seq || (l.SubSequence == nil) != (subSeq == nil) {
		return false
	}
	return subSeq == nil || *l.SubSequence == *subSeq
}

func sAttr(s string) *types.AttributeValueMemberS { return &types.AttributeValueMemberS{Value: s} }

// expr builds an update and a condition expression; every attribute goes through a name
// placeholder (#Attr), so no attribute name can collide with a reserved word.
type expr struct {
	names  map[string]string
	values map[string]types.AttributeValue
	sets   []string
	rems   []string
	conds  []string
}

func (e *expr) name(attr string) string {
	if e.names == nil {
		e.names = map[string]string{}
	}
	e.names["#"+attr] = attr
	return "#" + attr
}

func (e *expr) value(ph string, v types.AttributeValue) string {
	if e.values == nil {
		e.values = map[string]types.AttributeValue{}
	}
	e.values[":"+ph] = v
	return ":" + ph
}

func (e *expr) set(s string)    { e.sets = append(e.sets, s) }
func (e *expr) remove(s string) { e.rems = append(e.rems, s) }
func (e *expr) cond(s string)   { e.conds = append(e.conds, s) }

// asObserved is the condition that a row's owner and epoch are still as observed: the same
// ClientID (or none) and the same Epoch (or none: a new row, or one written by the built-in).
func (e *expr) asObserved(observed Lease) {
	if observed.ClientID == "" {
		e.cond("attribute_not_exists(" + e.name(AttrClientID) + ")")
	} else {
		e.cond(e.name(AttrClientID) + " = " + e.value("owner", sAttr(observed.ClientID)))
	}
	if observed.HasEpoch {
		e.cond(e.name(AttrEpoch) + " = " + e.value("epoch", numberAttr(observed.Epoch)))
	} else {
		e.cond("attribute_not_exists(" + e.name(AttrEpoch) + ")")
	}
}

// putNew writes the row item of a shard that has none yet, on condition that it still has none.
func (t *Table) putNew(ctx context.Context, item map[string]types.AttributeValue) error {
	_, err := t.api.PutItem(ctx, &dynamodb.PutItemInput{
		TableName:                aws.String(t.name),
		Item:                     item,
		ConditionExpression:      aws.String("attribute_not_exists(#sh)"),
		ExpressionAttributeNames: map[string]string{"#sh": AttrShardID},
	})
	return err
}

// ownedBy is the condition of the owner's writes: ClientID = me AND Epoch = mine.
func (e *expr) ownedBy(me string, epoch int64) {
	e.cond(e.name(AttrClientID) + " = " + e.value("me", sAttr(me)))
	e.cond(e.name(AttrEpoch) + " = " + e.value("mine", numberAttr(epoch)))
}

// epochIs is Epoch = epoch; epoch 0 also matches a row without Epoch (absent counts as 0).
func (e *expr) epochIs(epoch int64) {
	ep := e.name(AttrEpoch)
	v := e.value("epoch", numberAttr(epoch))
	if epoch == 0 {
		e.cond("(attribute_not_exists(" + ep + ") OR " + ep + " = " + v + ")")
		return
	}
	e.cond(ep + " = " + v)
}

// setCheckpoint writes seq and subSeq (SubSequence removed when nil); nothing when seq is empty.
func (e *expr) setCheckpoint(seq string, subSeq *uint64) {
	if seq == "" {
		return
	}
	e.set(e.name(AttrSequenceNumber) + " = " + e.value("seq", sAttr(seq)))
	if subSeq != nil {
		e.set(e.name(AttrSubSequence) + " = " + e.value("sub", numberAttr(*subSeq)))
	} else {
		e.remove(e.name(AttrSubSequence))
	}
}

func (e *expr) setOwner(owner string, epoch int64, timeout string) {
	e.set(e.name(AttrClientID) + " = " + e.value("newowner", sAttr(owner)))
	e.set(e.name(AttrEpoch) + " = " + e.value("next", numberAttr(epoch)))
	e.set(e.name(AttrLeaseTimeout) + " = " + e.value("timeout", sAttr(timeout)))
}

func (e *expr) removeHandoff() {
	e.remove(e.name(AttrHandoffTo))
	e.remove(e.name(AttrHandoffEpoch))
}

func (e *expr) update() string {
	var parts []string
	if len(e.sets) > 0 {
		parts = append(parts, "SET "+strings.Join(e.sets, ", "))
	}
	if len(e.rems) > 0 {
		parts = append(parts, "REMOVE "+strings.Join(e.rems, ", "))
	}
	return strings.Join(parts, " ")
}
