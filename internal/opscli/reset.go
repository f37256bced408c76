package opscli

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/benthos-kinesis/benthos-kinesis/checkpointer"
	"github.com/benthos-kinesis/benthos-kinesis/internal/kinesisapi"
)

// targetKind is where `leases reset --to` moves shards.
type targetKind uint8

const (
	toOldest targetKind = iota + 1
	toLatest
	toTimestamp
	toSequence
)

type target struct {
	kind targetKind
	at   time.Time
	seq  string
}

// parseTarget parses --to.
func parseTarget(s string) (target, error) {
	s = strings.TrimSpace(s)
	key, val, hasVal := strings.Cut(s, "=")
	switch strings.ToLower(key) {
	case "oldest", "trim_horizon":
		if !hasVal {
			return target{kind: toOldest}, nil
		}
	case "latest":
		if !hasVal {
			return target{kind: toLatest}, nil
		}
	case "timestamp":
		at, err := time.Parse(time.RFC3339Nano, strings.TrimSpace(val))
		if err != nil {
			return target{}, fmt.Errorf("--to %s: the time must be RFC 3339, such as 2026-01-31T09:00:00Z: %w", s, err)
		}
		if at.After(time.Now().Add(time.Minute)) {
			return target{}, fmt.Errorf("--to %s: the time is in the future (use latest to skip to the tip)", s)
		}
		return target{kind: toTimestamp, at: at}, nil
	case "sequence":
		v := strings.TrimSpace(val)
		if v == "" || strings.Trim(v, "0123456789") != "" {
			return target{}, fmt.Errorf("--to %s: want sequence=N with N a Kinesis sequence number (decimal digits)", s)
		}
		return target{kind: toSequence, seq: v}, nil
	}
	return target{}, fmt.Errorf("--to %q: want oldest, latest, timestamp=RFC3339 or sequence=N", s)
}

// change is one planned write of reset or import.
type change struct {
	view      shardView
	owner     string // the owner when planned ("" free)
	alive     bool   // the owner was judged alive
	placement checkpointer.Placement
	note      string // how the position was found
	// results, once applied
	err     error
	written checkpointer.Lease
}

// changeJSON is one change of the JSON output of reset and import.
type changeJSON struct {
	Stream     string `json:"stream"`
	Shard      string `json:"shard"`
	Owner      string `json:"owner,omitempty"`
	OwnerAlive *bool  `json:"owner_alive,omitempty"`
	From       string `json:"from"`
	To         string `json:"to"`
	Note       string `json:"note,omitempty"`
	// To, as written: the checkpoint (and sub-sequence), start and finished flag.
	SequenceNumber string     `json:"sequence_number,omitempty"`
	SubSequence    *uint64    `json:"sub_sequence,omitempty"`
	StartAt        *time.Time `json:"start_at,omitempty"`
	Finished       bool       `json:"finished"`
	Result         string     `json:"result"` // planned, moved, failed
	Epoch          *int64     `json:"epoch,omitempty"`
	Error          string     `json:"error,omitempty"`
}

func (ch *change) json(applied bool) changeJSON {
	j := changeJSON{
		Stream: ch.view.Stream, Shard: ch.view.Shard, Owner: ch.owner, From: describeRow(ch.view),
		To: describePlacement(ch.view, ch.placement), Note: ch.note, SequenceNumber: ch.placement.SequenceNumber,
		SubSequence: ch.placement.SubSequence, Finished: ch.placement.Finished, Result: "planned",
	}
	if ch.owner != "" {
		a := ch.alive
		j.OwnerAlive = &a
	}
	if !ch.placement.StartAt.IsZero() {
		at := ch.placement.StartAt
		j.StartAt = &at
	}
	switch {
	case !applied:
	case ch.err != nil:
		j.Result, j.Error = "failed", ch.err.Error()
	default:
		j.Result = "moved"
		if ch.written.HasEpoch {
			e := ch.written.Epoch
			j.Epoch = &e
		}
	}
	return j
}

// writePlan prints the changes as a table (applied: with their results).
func writePlan(w io.Writer, changes []*change, applied bool) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	header := "STREAM\tSHARD\tOWNER\tFROM\tTO\tNOTE"
	if applied {
		header += "\tRESULT"
	}
	fmt.Fprintln(tw, header)
	for _, ch := range changes {
		j := ch.json(applied)
		owner := orDash(j.Owner)
		if j.OwnerAlive != nil && *j.OwnerAlive {
			owner += " (alive)"
		} else if j.OwnerAlive != nil {
			owner += " (dead)"
		}
		row := fmt.Sprintf("%s\t%s\t%s\t%s\t%s\t%s", j.Stream, j.Shard, owner, j.From, j.To, orDash(j.Note))
		if applied {
			res := j.Result
			if j.Error != "" {
				res += ": " + j.Error
			} else if j.Epoch != nil {
				res += fmt.Sprintf(" (epoch %d)", *j.Epoch)
			}
			row += "\t" + res
		}
		fmt.Fprintln(tw, row)
	}
	return tw.Flush()
}

// planResult is the JSON output of reset and import.
type planResult struct {
	Stream  string       `json:"stream"`
	Table   string       `json:"table"`
	DryRun  bool         `json:"dry_run"`
	Applied bool         `json:"applied"`
	Changes []changeJSON `json:"changes"`
	Skipped []string     `json:"skipped,omitempty"`
}

// runPlan prints the plan, refuses live owners without --force, asks, applies, and reports.
func (o options) runPlan(c *cli.Context, ls *leaseSession, s kinesisapi.Stream, changes []*change, skipped []string, verb string) error {
	force, dryRun := c.Bool("force"), c.Bool("dry-run")
	var live []string
	for _, ch := range changes {
		if ch.alive {
			live = append(live, fmt.Sprintf("%s (owner %s)", ch.view.Shard, ch.owner))
			if force {
				// The owner keeps the lease at the new epoch: it is fenced from its old one
				// and reads again from the new position (see checkpointer.Placement).
				ch.placement.KeepOwner, ch.placement.IgnoreCheckpoint = true, true
			}
		}
	}
	result := func(applied bool) error {
		if ls.format == formatJSON {
			r := planResult{Stream: s.String(), Table: ls.table.Name(), DryRun: dryRun, Applied: applied, Skipped: skipped, Changes: []changeJSON{}}
			for _, ch := range changes {
				r.Changes = append(r.Changes, ch.json(applied))
			}
			return writeJSON(ls.out, r)
		}
		if err := writePlan(ls.out, changes, applied); err != nil {
			return err
		}
		for _, sk := range skipped {
			fmt.Fprintf(ls.out, "left as is: %s\n", sk)
		}
		return nil
	}
	if len(changes) == 0 {
		if err := result(false); err != nil {
			return err
		}
		return fmt.Errorf("%s: nothing to change in stream %s", c.Command.FullName(), s)
	}
	if len(live) > 0 && !force {
		_ = result(false)
		return fmt.Errorf("%s: refusing: live workers own %s; stop them first, or pass --force to move the shards under them "+
			"(each owner is fenced: its writes at the old epoch fail, and it reads again from the new position)",
			c.Command.FullName(), strings.Join(live, ", "))
	}
	if dryRun {
		if err := result(false); err != nil {
			return err
		}
		if ls.format != formatJSON {
			fmt.Fprintln(ls.out, "dry run: nothing changed")
		}
		return nil
	}
	if ls.format != formatJSON {
		// The plan before the question: what will change is on the screen when asked.
		if err := writePlan(ls.out, changes, false); err != nil {
			return err
		}
	}
	question := fmt.Sprintf("%s %d shard(s) of stream %s in table %s?", verb, len(changes), s, ls.table.Name())
	if len(live) > 0 {
		question = fmt.Sprintf("%s %d shard(s) of stream %s in table %s, %d of them under live owners?", verb, len(changes), s, ls.table.Name(), len(live))
	}
	if err := o.confirm(c, question); err != nil {
		return err
	}
	failed := 0
	for _, ch := range changes {
		ch.written, ch.err = ls.table.Place(c.Context, ch.view.Row, ch.placement)
		if ch.err != nil {
			failed++
			if checkpointer.IsConflict(ch.err) {
				ch.err = fmt.Errorf("the row changed since it was read (a worker claimed or checkpointed it): run the command again: %w", ch.err)
			}
		}
	}
	if ls.format != formatJSON {
		fmt.Fprintln(ls.out)
	}
	if err := result(true); err != nil {
		return err
	}
	if failed > 0 {
		return fmt.Errorf("%s: %d of %d shard(s) not changed (see above)", c.Command.FullName(), failed, len(changes))
	}
	return nil
}

func (o options) leasesResetAction(c *cli.Context) error {
	name := c.Command.FullName()
	if !c.IsSet("to") {
		return fmt.Errorf("%s: --to is required: oldest, latest, timestamp=RFC3339 or sequence=N", name)
	}
	to, err := parseTarget(c.String("to"))
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	names := shardNames(c)
	if to.kind == toSequence && len(names) != 1 {
		return fmt.Errorf("%s: --to sequence=N needs exactly one --shard (a sequence number belongs to one shard)", name)
	}
	s, err := oneStream(c)
	if err != nil {
		return err
	}
	ls, err := o.openLeases(c, "")
	if err != nil {
		return err
	}
	views, err := ls.streamShards(c.Context, s)
	if err != nil {
		return err
	}
	views, err = shardsOf(views, names, s)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	live, err := ls.watch(c.Context, views)
	if err != nil {
		return err
	}
	now := time.Now()
	var changes []*change
	var skipped []string
	for _, v := range views {
		if !v.Listed {
			skipped = append(skipped, fmt.Sprintf("%s: no longer listed by the stream (aged out)", v.Shard))
			continue
		}
		ch := &change{view: v, owner: v.Row.ClientID, alive: v.Row.ClientID != "" && live[v.Row.ClientID].Alive}
		if err := o.resolve(c.Context, ls, s, to, now, ch); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		changes = append(changes, ch)
	}
	return o.runPlan(c, ls, s, changes, skipped, "Move")
}

// resolve finds the placement of one shard for --to.
//
// A shard with a checkpoint resumes after it; one without starts at its row's StartAt
// (AT_TIMESTAMP), except a child whose parent the stream still lists, which the inputs read from
// its oldest record. So: oldest is StartAt = the Unix epoch; latest and timestamp=T are
// StartAt = T (now for latest), which is exactly what AT_TIMESTAMP gives, with no read of the
// shard (latest on a closed shard is finished: nothing more is written to it); only for such a
// child is the shard read, for a checkpoint at the record just before
// the first one at or after T (and a closed child with no record at or after T is marked
// finished: nothing of it is left to read). sequence=N is the checkpoint N.
func (o options) resolve(ctx context.Context, ls *leaseSession, s kinesisapi.Stream, to target, now time.Time, ch *change) error {
	v := ch.view
	pace := o.pace
	if pace <= 0 {
		pace = getRecordsPace
	}
	switch to.kind {
	case toOldest:
		ch.placement = checkpointer.Placement{StartAt: oldestStart}
		ch.note = "TRIM_HORIZON"
		return nil
	case toSequence:
		if err := checkSequence(ctx, ls.kin, s, v.Shard, to.seq); err != nil {
			return err
		}
		ch.placement = checkpointer.Placement{SequenceNumber: to.seq}
		return nil
	}
	at := to.at
	if to.kind == toLatest {
		at = now
	}
	if to.kind == toLatest && v.Closed {
		// A closed shard gets no more records: nothing of it is written after the reset.
		ch.placement = checkpointer.Placement{Finished: true}
		ch.note = "closed: nothing is written after the reset"
		return nil
	}
	if !v.isChild() {
		// The next owner asks AT_TIMESTAMP at StartAt itself: nothing to find here (and the
		// question is one kinesalite never answers when no record is at or after the time).
		ch.placement = checkpointer.Placement{StartAt: at}
		ch.note = "AT_TIMESTAMP"
		return nil
	}
	first, ended, err := firstAtOrAfter(ctx, ls.kin, s, v.Shard, at, pace)
	if err != nil {
		return err
	}
	switch {
	case ended:
		ch.placement = checkpointer.Placement{Finished: true}
		ch.note = "closed, nothing at or after " + at.UTC().Format(time.RFC3339)
		return nil
	case first != nil:
		ch.note = fmt.Sprintf("first record %s (arrived %s)", first.Seq, first.Arrival.UTC().Format(time.RFC3339Nano))
	default:
		ch.note = "nothing yet: the next record written"
	}
	prev, err := lastBefore(ctx, ls.kin, s, v.Shard, at, first, pace)
	if err != nil {
		return err
	}
	if prev == nil {
		// Nothing before: its oldest record is the first at or after T.
		ch.placement = checkpointer.Placement{StartAt: at}
		return nil
	}
	ch.placement = checkpointer.Placement{SequenceNumber: prev.Seq}
	ch.note += "; child of a listed parent: checkpoint at the record before"
	return nil
}
