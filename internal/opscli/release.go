package opscli

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/benthos-kinesis/benthos-kinesis/checkpointer"
	"github.com/benthos-kinesis/benthos-kinesis/internal/kinesisapi"
)

// releaseJSON is the JSON output of `leases release`.
type releaseJSON struct {
	Stream         string  `json:"stream"`
	Shard          string  `json:"shard"`
	Owner          string  `json:"owner,omitempty"`
	Result         string  `json:"result"` // released, not-owned, finished, owner-dead
	Epoch          *int64  `json:"epoch,omitempty"`
	SequenceNumber string  `json:"sequence_number,omitempty"`
	SubSequence    *uint64 `json:"sub_sequence,omitempty"`
	Message        string  `json:"message"`
}

// operatorID is the worker id of one run of the tool: recognisable in `leases list`, random so
// that two runs never share a row.
func operatorID() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return "operator-" + hex.EncodeToString(b)
}

// leasesReleaseAction releases one shard gracefully through the protocol's hand-off
// (docs/LEASES.md, "Hand-off"). An owner honours a request only from a worker it judges alive:
// one whose worker row it has seen beating. So the tool joins as a worker for the time of the
// release: it writes its own worker row and keeps it beating, requests the shard, and waits for
// the owner to stop reading, wait for its delivered batches to be acknowledged and write the
// hand-over (its final checkpoint and the tool as the new owner, epoch + 1). It then releases
// the shard (owner removed, checkpoint and epoch kept) and removes its worker row: the fleet
// claims the free shard at its next read. If the tool stops beating first (killed), the owner
// judges it gone and releases the shard itself (or, before it started, clears the request with
// a re-take), both paths of the protocol.
func (o options) leasesReleaseAction(c *cli.Context) error {
	name := c.Command.FullName()
	shard := strings.TrimSpace(c.String("shard"))
	if shard == "" {
		return fmt.Errorf("%s: --shard is required", name)
	}
	wait := c.Duration("wait")
	if wait <= 0 {
		return fmt.Errorf("%s: --wait must be positive, got %v", name, wait)
	}
	s, err := oneStream(c)
	if err != nil {
		return err
	}
	me := operatorID()
	ls, err := o.openLeases(c, me)
	if err != nil {
		return err
	}
	views, err := ls.streamShards(c.Context, s)
	if err != nil {
		return err
	}
	views, err = shardsOf(views, []string{shard}, s)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	row := views[0].Row
	out := releaseJSON{Stream: s.String(), Shard: shard, Owner: row.ClientID}
	report := func(result, msg string, l checkpointer.Lease) error {
		out.Result, out.Message = result, msg
		if l.Exists {
			out.SequenceNumber, out.SubSequence = l.SequenceNumber, l.SubSequence
			if l.HasEpoch {
				e := l.Epoch
				out.Epoch = &e
			}
		}
		if ls.format == formatJSON {
			return writeJSON(ls.out, out)
		}
		_, err := fmt.Fprintln(ls.out, msg)
		return err
	}
	switch {
	case row.Finished:
		return report("finished", fmt.Sprintf("shard %s of %s is finished (read to its end): nothing to release", shard, s), row)
	case row.ClientID == "":
		return report("not-owned", fmt.Sprintf("shard %s of %s has no owner: nothing to release", shard, s), row)
	}
	live, err := ls.watch(c.Context, views)
	if err != nil {
		return err
	}
	if !live[row.ClientID].Alive {
		return report("owner-dead", fmt.Sprintf("the owner of shard %s of %s, %s, is not alive: the fleet takes its shards once it judges it dead (within lease_period); nothing to hand over",
			shard, s, row.ClientID), row)
	}

	ctx, cancel := context.WithTimeout(c.Context, wait)
	defer cancel()
	stopBeating, err := beat(ctx, ls, s)
	if err != nil {
		return err
	}
	defer func() {
		stopBeating()
		// With a context of its own: the row must go even when the wait timed out or the
		// command was interrupted, or the fleet would count a worker that owns nothing.
		rctx, rcancel := context.WithTimeout(context.WithoutCancel(c.Context), 10*time.Second)
		defer rcancel()
		if err := ls.table.RemoveWorker(rctx); err != nil {
			fmt.Fprintf(ls.warn, "warning: %v (the fleet forgets it after two lease periods)\n", err)
		}
	}()
	if ls.format != formatJSON {
		fmt.Fprintf(ls.warn, "asking %s to hand over shard %s of %s (as worker %s; waiting up to %v)\n", row.ClientID, shard, s, me, wait)
	}
	if err := ls.table.RequestHandoff(ctx, s.String(), shard, row.ClientID, row.Epoch); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	l, err := ls.awaitHandover(ctx, s, shard, row)
	if err != nil {
		// Timed out: withdraw the request. If the hand-over won the race, the shard is ours.
		wctx, wcancel := context.WithTimeout(context.WithoutCancel(c.Context), 10*time.Second)
		defer wcancel()
		werr := ls.table.WithdrawHandoff(wctx, s.String(), shard, row.ClientID, row.Epoch)
		cur, gerr := ls.table.Get(wctx, s.String(), shard)
		if werr == nil || gerr != nil || cur.ClientID != me {
			return fmt.Errorf("%s: %w", name, err)
		}
		l = cur
		ctx = wctx
	}
	if l.ClientID != me {
		// The owner gave it up otherwise (released it, it was finished or taken).
		return report("not-owned", fmt.Sprintf("shard %s of %s changed hands without a hand-over to this tool: %s", shard, s, l), l)
	}
	if err := ls.table.Release(ctx, s.String(), shard, l.Epoch, "", nil); err != nil {
		return fmt.Errorf("%s: the owner handed the shard over, but releasing it failed (the fleet takes it once this tool's worker row is gone): %w", name, err)
	}
	return report("released", fmt.Sprintf("released shard %s of %s: %s handed it over at %s; it is free for the fleet (epoch %d)",
		shard, s, row.ClientID, describeRow(shardView{Row: l}), l.Epoch), l)
}

// beat writes the tool's worker row now and then every heartbeat period until stopped, so that
// the owner judges the tool alive while it waits.
func beat(ctx context.Context, ls *leaseSession, s kinesisapi.Stream) (stop func(), err error) {
	period := min(ls.leasePeriod/3, time.Second)
	counter := int64(1)
	if err := ls.table.Heartbeat(ctx, counter, []string{s.String()}); err != nil {
		return nil, err
	}
	bctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(period)
		defer t.Stop()
		for {
			select {
			case <-bctx.Done():
				return
			case <-t.C:
				counter++
				// A failed beat is not fatal: the next one may pass, and an owner that judges
				// the tool gone releases the shard instead of handing it over.
				_ = ls.table.Heartbeat(bctx, counter, []string{s.String()})
			}
		}
	}()
	return func() { cancel(); wg.Wait() }, nil
}

// awaitHandover reads the row until it no longer shows the request pending: handed over to this
// tool, or changed otherwise; ctx bounds the wait.
func (ls *leaseSession) awaitHandover(ctx context.Context, s kinesisapi.Stream, shard string, asked checkpointer.Lease) (checkpointer.Lease, error) {
	me := ls.table.WorkerID()
	for {
		l, err := ls.table.Get(ctx, s.String(), shard)
		if err != nil {
			return checkpointer.Lease{}, err
		}
		pending := l.ClientID == asked.ClientID && l.Epoch == asked.Epoch && l.HandoffTo == me
		if !pending {
			return l, nil
		}
		if err := kinesisapi.Sleep(ctx, ls.poll); err != nil {
			return checkpointer.Lease{}, fmt.Errorf("%s did not hand shard %s of %s over within --wait (still %s): %w", asked.ClientID, shard, s, l, err)
		}
	}
}
