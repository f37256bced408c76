package verify

import (
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"
)

// The checks a Report can fail, for errors.Is on Report.Err.
var (
	ErrInvalidInput = errors.New("invalid input")
	ErrLost         = errors.New("records lost")
	ErrUnknown      = errors.New("records delivered that were never written")
	ErrOutOfOrder   = errors.New("records first delivered out of write order")
	ErrUnexplained  = errors.New("unexplained duplicates")
	ErrDuplicates   = errors.New("duplicates in a scenario that allows none")
	ErrStaleZombie  = errors.New("resumed process delivered records of a shard it had lost")
	ErrLease        = errors.New("lease table violations")
)

// Report is the result of Check. Every list of examples holds at most
// Options.MaxExamples entries; the counts are complete.
type Report struct {
	Written   int       // records written
	Delivered int       // deliveries (complete lines)
	Distinct  int       // written records delivered at least once
	Start     time.Time // the earliest delivery; zero if none
	TornLines int       // files that ended in a torn line (from Options.Files)
	Files     []FileStats

	Lost         int     // written records never delivered
	LostExamples []Range // runs of consecutive lost records

	Unknown         int // deliveries of records never written
	UnknownExamples []Delivery

	OutOfOrder    int // records first delivered after a later-written record of the same key
	OrderExamples []OrderViolation

	// Duplicates counts every delivery after the first of a record:
	// Delivered = Distinct + Duplicates + Unknown.
	Duplicates        int
	DuplicatesByCause map[Cause]int
	DuplicateExamples map[Cause][]Duplicate

	StaleZombie         int // duplicates delivered by a resumed process after its grace period
	StaleZombieExamples []Duplicate

	LeaseSamples    int
	LeaseViolations int
	LeaseExamples   []LeaseViolation

	Incarnations []IncarnationStats // in natural order of ID
	Shards       []ShardStats       // in natural order of Shard

	opts    Options // the thresholds Err applies
	invalid error   // arguments Check could not work with
}

// Range is a run of records of one key: n = First..Last.
type Range struct {
	Key         string
	First, Last int
}

func (r Range) String() string {
	if r.First == r.Last {
		return fmt.Sprintf("%s/%d", r.Key, r.First)
	}
	return fmt.Sprintf("%s/%d..%d", r.Key, r.First, r.Last)
}

// extend adds n to the range if it directly follows it.
func (r *Range) extend(key string, n int) bool {
	if r.Key != key || n != r.Last+1 {
		return false
	}
	r.Last = n
	return true
}

// OrderViolation is a record whose first delivery (Late) came after the
// first delivery of a record of the same key written after it (Ahead).
type OrderViolation struct {
	Late  Delivery
	Ahead Delivery
}

func (v OrderViolation) String() string {
	return fmt.Sprintf("%s delivered after %s", v.Late, v.Ahead)
}

// Duplicate is a delivery (Dup) of a record already delivered (First: the
// first delivery of the same stream record), and what it is attributed to.
type Duplicate struct {
	First Delivery
	Dup   Delivery
	Cause Cause
}

func (d Duplicate) String() string {
	return fmt.Sprintf("%s/%d (%s) by %s at %s%s, first by %s at %s%s, seq %s",
		d.Dup.Key, d.Dup.N, d.Cause, d.Dup.Incarnation, d.Dup.clock(), d.Dup.where(),
		d.First.Incarnation, d.First.clock(), d.First.where(), d.First.Seq)
}

// IncarnationStats is what one reader incarnation delivered and underwent.
type IncarnationStats struct {
	ID          string
	Deliveries  int
	Duplicates  int               // of its deliveries, those that were duplicates
	StaleZombie int               // of those, stale deliveries after a resume
	First, Last time.Time         // its first and last delivery; zero if none
	Events      map[EventKind]int // the events recorded for it, by kind
}

// ShardStats is what was read from one shard.
type ShardStats struct {
	Shard      string
	Records    int // records first delivered from this shard
	Deliveries int // all deliveries from it, duplicates included
	// Takeovers counts, in time order of the shard's records' first
	// deliveries, the changes of the incarnation delivering them.
	Takeovers int
	// MaxTakeoverGap is the longest time without a new record across a
	// take-over, from the last new record of MaxGapFrom to the first of
	// MaxGapTo.
	MaxTakeoverGap       time.Duration
	MaxGapFrom, MaxGapTo string
}

// ReaderDuplicates counts the duplicates the readers caused: all but the
// records the writer wrote twice.
func (r Report) ReaderDuplicates() int {
	return r.Duplicates - r.DuplicatesByCause[CauseWrittenTwice]
}

// errExamples is how many examples an error message quotes.
const errExamples = 3

// Err returns nil if every check passed, or an error describing every one
// that failed, each wrapping one of the Err* values of this package.
func (r Report) Err() error {
	var errs []error
	fail := func(sentinel error, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{sentinel}, args...)...))
	}
	if r.invalid != nil {
		fail(ErrInvalidInput, "%w", r.invalid)
	}
	if r.Lost > 0 {
		fail(ErrLost, "%d of %d, e.g. %s", r.Lost, r.Written, examples(r.LostExamples))
	}
	if r.Unknown > 0 {
		fail(ErrUnknown, "%d, e.g. %s", r.Unknown, examples(r.UnknownExamples))
	}
	if r.OutOfOrder > 0 && !r.opts.AllowOutOfOrder {
		fail(ErrOutOfOrder, "%d, e.g. %s", r.OutOfOrder, examples(r.OrderExamples))
	}
	if n := r.DuplicatesByCause[CauseUnexplained]; n > r.opts.MaxUnexplained {
		fail(ErrUnexplained, "%d (at most %d allowed), e.g. %s", n, r.opts.MaxUnexplained,
			examples(r.DuplicateExamples[CauseUnexplained]))
	}
	if n := r.ReaderDuplicates(); r.opts.ZeroDuplicates && n > 0 {
		var ex []Duplicate
		for _, c := range causes {
			if c != CauseWrittenTwice {
				ex = append(ex, r.DuplicateExamples[c]...)
			}
		}
		fail(ErrDuplicates, "%d (%s), e.g. %s", n, r.causeSummary(false), examples(ex))
	}
	if r.StaleZombie > 0 {
		fail(ErrStaleZombie, "%d deliveries more than %s after SIGCONT, e.g. %s",
			r.StaleZombie, r.opts.ContinueGrace, examples(r.StaleZombieExamples))
	}
	if r.LeaseViolations > 0 {
		fail(ErrLease, "%d, e.g. %s", r.LeaseViolations, examples(r.LeaseExamples))
	}
	return errors.Join(errs...)
}

func examples[T fmt.Stringer](list []T) string {
	var b strings.Builder
	for i, e := range list[:min(len(list), errExamples)] {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(e.String())
	}
	if len(list) > errExamples {
		b.WriteString("; ...")
	}
	return b.String()
}

// causeSummary lists the non-zero duplicate counts by cause, e.g.
// "killed 120, zombie 3".
func (r Report) causeSummary(withWriter bool) string {
	var parts []string
	for _, c := range causes {
		if n := r.DuplicatesByCause[c]; n > 0 && (withWriter || c != CauseWrittenTwice) {
			parts = append(parts, fmt.Sprintf("%s %d", c, n))
		}
	}
	return strings.Join(parts, ", ")
}

// String renders the report as a short plain-text table: the checks, the
// totals, and per incarnation and per shard what was delivered. Failed
// checks are marked FAIL; Err has the details.
func (r Report) String() string {
	var b strings.Builder
	status := "PASS"
	if r.Err() != nil {
		status = "FAIL"
	}
	fmt.Fprintf(&b, "verify: %s: written %d, delivered %d, distinct %d, torn lines %d (ignored)\n",
		status, r.Written, r.Delivered, r.Distinct, r.TornLines)
	if r.invalid != nil {
		fmt.Fprintf(&b, "invalid input: %v\n", r.invalid)
		return b.String()
	}

	tw := tabwriter.NewWriter(&b, 0, 8, 2, ' ', 0)
	verdict := func(failed bool) string {
		if failed {
			return "FAIL"
		}
		return "ok"
	}
	unexplained := r.DuplicatesByCause[CauseUnexplained]
	fmt.Fprintf(tw, "check\tcount\tresult\tdetail\n")
	// Every row has a detail, so that the result column lines up without
	// trailing blanks.
	fmt.Fprintf(tw, "lost\t%d\t%s\tof %d written\n", r.Lost, verdict(r.Lost > 0), r.Written)
	fmt.Fprintf(tw, "unknown\t%d\t%s\tof %d delivered\n", r.Unknown, verdict(r.Unknown > 0), r.Delivered)
	order := "first deliveries, per key"
	if r.opts.AllowOutOfOrder {
		order += " (reported, not required)"
	}
	fmt.Fprintf(tw, "out of order\t%d\t%s\t%s\n", r.OutOfOrder, verdict(r.OutOfOrder > 0 && !r.opts.AllowOutOfOrder), order)
	dups := r.causeSummary(true)
	if dups == "" {
		dups = "-"
	}
	if r.opts.ZeroDuplicates {
		dups += " (none allowed)"
	}
	fmt.Fprintf(tw, "duplicates\t%d\t%s\t%s\n", r.Duplicates,
		verdict(r.opts.ZeroDuplicates && r.ReaderDuplicates() > 0), dups)
	fmt.Fprintf(tw, "unexplained\t%d\t%s\tat most %d allowed\n", unexplained,
		verdict(unexplained > r.opts.MaxUnexplained), r.opts.MaxUnexplained)
	fmt.Fprintf(tw, "stale zombie\t%d\t%s\tgrace %s\n", r.StaleZombie, verdict(r.StaleZombie > 0), r.opts.ContinueGrace)
	fmt.Fprintf(tw, "lease violations\t%d\t%s\t%d samples\n", r.LeaseViolations, verdict(r.LeaseViolations > 0), r.LeaseSamples)
	tw.Flush()

	if len(r.Incarnations) > 0 {
		b.WriteByte('\n')
		tw = tabwriter.NewWriter(&b, 0, 8, 2, ' ', 0)
		fmt.Fprintf(tw, "incarnation\tdeliveries\tduplicates\tfirst\tlast\tevents\n")
		for _, in := range r.Incarnations {
			fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\t%s\n", in.ID, in.Deliveries, in.Duplicates,
				r.offset(in.First), r.offset(in.Last), eventSummary(in.Events))
		}
		tw.Flush()
	}
	if len(r.Shards) > 0 {
		b.WriteByte('\n')
		tw = tabwriter.NewWriter(&b, 0, 8, 2, ' ', 0)
		fmt.Fprintf(tw, "shard\trecords\tdeliveries\ttakeovers\tmax takeover gap\n")
		for _, s := range r.Shards {
			gap := "-"
			if s.Takeovers > 0 {
				gap = fmt.Sprintf("%s (%s -> %s)", s.MaxTakeoverGap.Round(time.Millisecond), s.MaxGapFrom, s.MaxGapTo)
			}
			fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%s\n", s.Shard, s.Records, s.Deliveries, s.Takeovers, gap)
		}
		tw.Flush()
	}
	return b.String()
}

// offset renders a time relative to the first delivery.
func (r Report) offset(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return "+" + t.Sub(r.Start).Round(time.Millisecond).String()
}

func eventSummary(events map[EventKind]int) string {
	var parts []string
	for k := Started; int(k) < len(eventKindNames); k++ {
		switch n := events[k]; {
		case n == 1:
			parts = append(parts, k.String())
		case n > 1:
			parts = append(parts, fmt.Sprintf("%s x%d", k, n))
		}
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, ", ")
}
