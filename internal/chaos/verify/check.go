package verify

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Written describes what the writer wrote: for every key index k in
// [0, Keys), the records n = 0..PerKey-1 of partition key "key-<k>", in
// increasing n.
//
// It is a shape rather than a map of per-key counts because the writer
// writes the same number of records per key, and the shape lets Check
// address every record as k*PerKey+n in flat slices: 4 bytes per record and
// no hashing of strings per delivery, which keeps a check of millions of
// deliveries within a second or two.
type Written struct {
	Keys   int
	PerKey int
}

// Records is the number of records written.
func (w Written) Records() int { return w.Keys * w.PerKey }

// Key returns the partition key of key index k.
func (w Written) Key(k int) string { return keyPrefix + strconv.Itoa(k) }

const keyPrefix = "key-"

// keyIndex returns k for a key "key-<k>" written by the writer: k in
// decimal without leading zeros and below Keys.
func (w Written) keyIndex(key string) (int, bool) {
	digits, ok := strings.CutPrefix(key, keyPrefix)
	if !ok || len(digits) == 0 || len(digits) > 18 || (digits[0] == '0' && len(digits) > 1) {
		return 0, false
	}
	k := 0
	for i := 0; i < len(digits); i++ {
		c := digits[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		k = k*10 + int(c-'0')
	}
	return k, k < w.Keys
}

// Cause is what a duplicate delivery is attributed to.
type Cause string

const (
	// CauseKilled: the incarnation that delivered the first copy was killed
	// (SIGKILL) before the duplicate, before its checkpoint covered it.
	CauseKilled Cause = "killed"
	// CauseZombie: an incarnation involved was frozen (SIGSTOP): the first
	// deliverer, between delivering and the duplicate, so its lease was
	// taken over; or the duplicate's deliverer, before the first copy was
	// delivered, so it delivered what it had fetched before the freeze.
	CauseZombie Cause = "zombie"
	// CausePartitioned: as CauseZombie, with a network partition.
	CausePartitioned Cause = "partitioned"
	// CauseLeaseLost: an incarnation that delivered a copy logged losing a
	// lease (being fenced) after delivering it.
	CauseLeaseLost Cause = "lease-lost"
	// CauseWrittenTwice: the copy has a different sequence number from the
	// first: the stream holds the record twice (a writer retry). Not a reader
	// duplicate; it never fails a check.
	CauseWrittenTwice Cause = "written-twice"
	// CauseUnexplained: no fault explains it.
	CauseUnexplained Cause = "unexplained"
)

// causes lists every Cause in the order reports show them.
var causes = []Cause{CauseKilled, CauseZombie, CausePartitioned, CauseLeaseLost, CauseWrittenTwice, CauseUnexplained}

// DefaultMaxExamples is the number of examples each list of a Report keeps
// when Options.MaxExamples is zero.
const DefaultMaxExamples = 20

// Options tunes Check, and carries what Check cannot see in the deliveries.
// The zero value is the strictest setting.
type Options struct {
	// MaxUnexplained is how many unexplained duplicates the run may have.
	MaxUnexplained int
	// ZeroDuplicates says that the scenario injects no fault that may cause
	// a redelivery (only graceful hand-offs, say): any reader duplicate fails
	// it. Records the writer wrote twice are not the readers' and do not
	// count.
	ZeroDuplicates bool
	// AllowOutOfOrder reports records first delivered out of write order
	// without failing: for a pipeline that may deliver a shard's records
	// out of order by design (nacks replayed while later batches go on).
	AllowOutOfOrder bool
	// ContinueGrace is how long after a SIGCONT a resumed process may still
	// deliver records another incarnation delivered first: the messages
	// already inside its pipeline when it was frozen. Zero allows none.
	ContinueGrace time.Duration
	// ClockSlack widens every comparison of an event's time with a
	// delivery's, for events the harness stamps late, such as a lost lease
	// taken from a log with whole seconds. Zero is exact.
	ClockSlack time.Duration
	// MaxExamples bounds each list of examples in the Report; zero means
	// DefaultMaxExamples.
	MaxExamples int
	// Files, as returned by ParseDeliveries or ReadDeliveryFiles, go into
	// the Report for its totals (torn lines). Optional.
	Files []FileStats
}

// Check verifies a run: see the package documentation for what it checks.
// It does not modify its arguments. The deliveries' order breaks ties
// between deliveries of one record stamped with the same time: the earlier
// in the slice counts as the first.
//
// Records are indexed in slices of int32, so a run is limited to 2^31-1
// written records and as many deliveries; Report.Err says if it is larger.
func Check(w Written, deliveries []Delivery, events []Event, samples []LeaseSample, opts Options) Report {
	if opts.MaxExamples <= 0 {
		opts.MaxExamples = DefaultMaxExamples
	}
	rep := Report{
		Delivered:         len(deliveries),
		Files:             opts.Files,
		DuplicatesByCause: make(map[Cause]int),
		DuplicateExamples: make(map[Cause][]Duplicate),
		LeaseSamples:      len(samples),
		opts:              opts,
	}
	for _, f := range opts.Files {
		if f.TornLine > 0 {
			rep.TornLines++
		}
	}
	switch {
	case w.Keys < 0 || w.PerKey < 0:
		rep.invalid = fmt.Errorf("invalid Written %+v", w)
		return rep
	case w.Keys > 0 && w.PerKey > (math.MaxInt32-1)/w.Keys:
		rep.invalid = fmt.Errorf("Written %+v: more than 2^31-1 records", w)
		return rep
	case len(deliveries) >= math.MaxInt32:
		rep.invalid = fmt.Errorf("%d deliveries: more than 2^31-1", len(deliveries))
		return rep
	}
	rep.Written = w.Records()

	c := checker{
		w:      w,
		ds:     deliveries,
		opts:   opts,
		tls:    newTimelines(events),
		rep:    &rep,
		incIdx: make(map[string]int),
		last:   -1,
	}
	c.index()
	c.duplicates()
	c.lost()
	c.order()
	c.shards()
	c.incarnations(events)
	checkLeases(samples, &rep)
	return rep
}

// checker holds the indexes one Check builds.
type checker struct {
	w    Written
	ds   []Delivery
	opts Options
	tls  timelines
	rep  *Report

	// rec is, per delivery, its record's index k*PerKey+n, or -1 if unknown.
	rec []int32
	// first is, per record, 1 + the index of its first delivery (earliest
	// At, then earliest in ds), or 0 if it was never delivered.
	first []int32
	// seqFirst is, for records delivered with more than one sequence number
	// (written twice), 1 + the index of the first delivery of each copy.
	seqFirst map[seqKey]int32

	incs   []incarnationAcc
	incIdx map[string]int
	last   int // index in incs of the last incarnation looked up
}

type seqKey struct {
	rec int32
	seq string
}

type incarnationAcc struct {
	IncarnationStats
	first, last int64
}

// incarnation returns the statistics of incarnation id, adding them if
// new. Deliveries come in runs of one incarnation (one file each), so the
// last one looked up is tried before the map.
func (c *checker) incarnation(id string) *incarnationAcc {
	if c.last >= 0 && c.incs[c.last].ID == id {
		return &c.incs[c.last]
	}
	i, ok := c.incIdx[id]
	if !ok {
		i = len(c.incs)
		c.incs = append(c.incs, incarnationAcc{IncarnationStats: IncarnationStats{ID: id}, first: math.MaxInt64, last: math.MinInt64})
		c.incIdx[id] = i
	}
	c.last = i
	return &c.incs[i]
}

// before orders deliveries by time, then by position.
func (c *checker) before(a, b int) bool {
	ta, tb := c.ds[a].At, c.ds[b].At
	return ta < tb || (ta == tb && a < b)
}

// index finds each delivery's record, each record's first delivery, and the
// unknown deliveries.
func (c *checker) index() {
	w, ds, rep := c.w, c.ds, c.rep
	c.rec = make([]int32, len(ds))
	c.first = make([]int32, w.Records())
	var multi []bool // records seen with two sequence numbers; rare, so lazy
	start := int64(math.MaxInt64)
	for i := range ds {
		d := &ds[i]
		start = min(start, d.At)
		acc := c.incarnation(d.Incarnation)
		acc.Deliveries++
		acc.first, acc.last = min(acc.first, d.At), max(acc.last, d.At)

		k, ok := w.keyIndex(d.Key)
		if !ok || d.N < 0 || d.N >= w.PerKey {
			c.rec[i] = -1
			rep.Unknown++
			if len(rep.UnknownExamples) < c.opts.MaxExamples {
				rep.UnknownExamples = append(rep.UnknownExamples, *d)
			}
			continue
		}
		r := int32(k*w.PerKey + d.N)
		c.rec[i] = r
		f := c.first[r] - 1
		if f < 0 {
			c.first[r] = int32(i + 1)
			rep.Distinct++
			continue
		}
		// If every delivery of a record carries the sequence number of the
		// record's first delivery so far, all carry the same one; so
		// comparing with that one finds every record that has two.
		if ds[f].Seq != d.Seq {
			if multi == nil {
				multi = make([]bool, w.Records())
			}
			multi[r] = true
		}
		if d.At < ds[f].At {
			c.first[r] = int32(i + 1)
		}
	}
	if len(ds) > 0 {
		rep.Start = time.Unix(0, start)
	}
	if multi == nil {
		return
	}
	c.seqFirst = make(map[seqKey]int32)
	for i := range ds {
		r := c.rec[i]
		if r < 0 || !multi[r] {
			continue
		}
		key := seqKey{r, ds[i].Seq}
		if f := c.seqFirst[key]; f == 0 || ds[i].At < ds[f-1].At {
			c.seqFirst[key] = int32(i + 1)
		}
	}
}

// duplicates attributes every delivery after the first of its record, and
// finds the stale deliveries of resumed processes.
func (c *checker) duplicates() {
	ds, rep := c.ds, c.rep
	for i := range ds {
		r := c.rec[i]
		if r < 0 {
			continue
		}
		f := int(c.first[r]) - 1
		if f == i {
			continue
		}
		d := &ds[i]
		rep.Duplicates++
		c.incarnation(d.Incarnation).Duplicates++

		// Compare with the first delivery of the same stream record: with a
		// record written twice, of the copy with this sequence number.
		var cause Cause
		if d.Seq != ds[f].Seq {
			f = int(c.seqFirst[seqKey{r, d.Seq}]) - 1
		}
		fd := &ds[f]
		if f == i {
			cause = CauseWrittenTwice
		} else {
			cause = c.cause(fd, d)
		}
		rep.DuplicatesByCause[cause]++
		dup := Duplicate{First: *fd, Dup: *d, Cause: cause}
		if ex := rep.DuplicateExamples[cause]; len(ex) < c.opts.MaxExamples {
			rep.DuplicateExamples[cause] = append(ex, dup)
		}
		if cause != CauseWrittenTwice && c.stale(fd, d) {
			rep.StaleZombie++
			c.incarnation(d.Incarnation).StaleZombie++
			if len(rep.StaleZombieExamples) < c.opts.MaxExamples {
				rep.StaleZombieExamples = append(rep.StaleZombieExamples, dup)
			}
		}
	}
}

// cause attributes the duplicate d of the delivery f (of the same stream
// record) to a fault:
//
//   - of f's incarnation, the first deliverer: it was dead (killed), frozen
//     or partitioned at some moment between delivering f and the duplicate,
//     so that its checkpoint could not cover f before another owner read it
//     again; or it logged losing a lease at any time after delivering f (a
//     process may notice, and log, only after the new owner has
//     redelivered);
//   - of d's incarnation, if another: it was frozen or partitioned before f
//     was delivered, so it was delivering what it had fetched before; or it
//     logged losing a lease after delivering d.
//
// Faults are tried in the order of the Cause constants; the first that
// applies is the cause.
func (c *checker) cause(f, d *Delivery) Cause {
	slack := int64(c.opts.ClockSlack)
	lo, hi := f.At-slack, d.At+slack
	tf := c.tls[f.Incarnation]
	if tf == nil {
		tf = &timeline{}
	}
	td := &timeline{}
	if t := c.tls[d.Incarnation]; t != nil && d.Incarnation != f.Incarnation {
		td = t
	}
	switch {
	case len(tf.killed) > 0 && tf.killed[0] <= hi:
		return CauseKilled
	case overlaps(tf.stopped, lo, hi), startsBy(td.stopped, f.At+slack):
		return CauseZombie
	case overlaps(tf.partitioned, lo, hi), startsBy(td.partitioned, f.At+slack):
		return CausePartitioned
	case anyIn(tf.leaseLost, lo, math.MaxInt64), anyIn(td.leaseLost, d.At-slack, math.MaxInt64):
		return CauseLeaseLost
	}
	return CauseUnexplained
}

// firstDelivererFaulted reports whether f's incarnation had a fault, as in
// cause, between delivering f and the duplicate d.
func (c *checker) firstDelivererFaulted(f, d *Delivery) bool {
	tf := c.tls[f.Incarnation]
	if tf == nil {
		return false
	}
	slack := int64(c.opts.ClockSlack)
	lo, hi := f.At-slack, d.At+slack
	return (len(tf.killed) > 0 && tf.killed[0] <= hi) ||
		overlaps(tf.stopped, lo, hi) || overlaps(tf.partitioned, lo, hi) ||
		anyIn(tf.leaseLost, lo, math.MaxInt64)
}

// stale reports whether the duplicate d, of f, was delivered by a resumed
// process after its grace period, of a record another incarnation had
// already delivered, with no fault of that incarnation to explain why the
// resumed one had to deliver it again: the resumed process kept reading a
// shard it had lost while frozen.
func (c *checker) stale(f, d *Delivery) bool {
	if d.Incarnation == f.Incarnation || f.At >= d.At {
		return false
	}
	td := c.tls[d.Incarnation]
	if td == nil {
		return false
	}
	resumed, ok := lastAtOrBefore(td.continued, d.At)
	if !ok || d.At <= resumed+int64(c.opts.ContinueGrace) {
		return false
	}
	return !c.firstDelivererFaulted(f, d)
}

// lost finds the records never delivered, as ranges.
func (c *checker) lost() {
	w, rep := c.w, c.rep
	for k := 0; k < w.Keys; k++ {
		base := k * w.PerKey
		for n := 0; n < w.PerKey; n++ {
			if c.first[base+n] != 0 {
				continue
			}
			rep.Lost++
			if len(rep.LostExamples) == 0 || !rep.LostExamples[len(rep.LostExamples)-1].extend(w.Key(k), n) {
				if len(rep.LostExamples) < c.opts.MaxExamples {
					rep.LostExamples = append(rep.LostExamples, Range{Key: w.Key(k), First: n, Last: n})
				}
			}
		}
	}
}

// order checks, per key, that the first deliveries of the records are in
// write order.
func (c *checker) order() {
	w, ds, rep := c.w, c.ds, c.rep
	var firsts []int
	for k := 0; k < w.Keys; k++ {
		base := k * w.PerKey
		// In write order, the first deliveries must come in time order. A
		// key for which they do, as almost all do, needs no sort.
		prev, sorted := -1, true
		for n := 0; n < w.PerKey && sorted; n++ {
			if f := int(c.first[base+n]) - 1; f >= 0 {
				sorted = prev < 0 || c.before(prev, f)
				prev = f
			}
		}
		if sorted {
			continue
		}
		// In time order, every record delivered after one written later is
		// out of order.
		firsts = firsts[:0]
		for n := 0; n < w.PerKey; n++ {
			if f := int(c.first[base+n]) - 1; f >= 0 {
				firsts = append(firsts, f)
			}
		}
		slices.SortFunc(firsts, func(a, b int) int {
			return cmp.Or(cmp.Compare(ds[a].At, ds[b].At), cmp.Compare(a, b))
		})
		ahead := -1
		for _, f := range firsts {
			if ahead >= 0 && ds[f].N < ds[ahead].N {
				rep.OutOfOrder++
				if len(rep.OrderExamples) < c.opts.MaxExamples {
					rep.OrderExamples = append(rep.OrderExamples, OrderViolation{Late: ds[f], Ahead: ds[ahead]})
				}
				continue
			}
			ahead = f
		}
	}
}

// shards measures, per shard, the records first delivered from it and the
// take-overs: in time order of those first deliveries, each change of the
// delivering incarnation, and the time without new records around it.
func (c *checker) shards() {
	ds, rep := c.ds, c.rep
	type firstOf struct {
		at    int64
		shard int32
		idx   int32
	}
	ids := make(map[string]int32)
	var names []string
	id := func(shard string) int32 {
		i, ok := ids[shard]
		if !ok {
			i = int32(len(names))
			ids[shard] = i
			names = append(names, shard)
		}
		return i
	}
	var deliveries []int
	lastName, lastID := "", int32(-1)
	for i := range ds {
		if lastID < 0 || ds[i].Shard != lastName {
			lastName, lastID = ds[i].Shard, id(ds[i].Shard)
		}
		for int(lastID) >= len(deliveries) {
			deliveries = append(deliveries, 0)
		}
		deliveries[lastID]++
	}
	firsts := make([]firstOf, 0, rep.Distinct)
	for _, f := range c.first {
		if f == 0 {
			continue
		}
		d := &ds[f-1]
		firsts = append(firsts, firstOf{at: d.At, shard: ids[d.Shard], idx: f - 1})
	}
	slices.SortFunc(firsts, func(a, b firstOf) int {
		return cmp.Or(cmp.Compare(a.shard, b.shard), cmp.Compare(a.at, b.at), cmp.Compare(a.idx, b.idx))
	})
	stats := make([]ShardStats, len(names))
	for i, name := range names {
		stats[i] = ShardStats{Shard: name, Deliveries: deliveries[i]}
	}
	for i, f := range firsts {
		st := &stats[f.shard]
		st.Records++
		if i == 0 || firsts[i-1].shard != f.shard {
			continue
		}
		prev := &ds[firsts[i-1].idx]
		cur := &ds[f.idx]
		if prev.Incarnation == cur.Incarnation {
			continue
		}
		st.Takeovers++
		if gap := time.Duration(cur.At - prev.At); gap >= st.MaxTakeoverGap {
			st.MaxTakeoverGap, st.MaxGapFrom, st.MaxGapTo = gap, prev.Incarnation, cur.Incarnation
		}
	}
	slices.SortFunc(stats, func(a, b ShardStats) int { return naturalCompare(a.Shard, b.Shard) })
	rep.Shards = stats
}

// incarnations completes the per-incarnation statistics, including the
// incarnations that only appear in events (they delivered nothing).
func (c *checker) incarnations(events []Event) {
	for _, e := range events {
		if e.Incarnation == "" {
			continue
		}
		acc := c.incarnation(e.Incarnation)
		if acc.Events == nil {
			acc.Events = make(map[EventKind]int)
		}
		acc.Events[e.Kind]++
	}
	stats := make([]IncarnationStats, len(c.incs))
	for i, acc := range c.incs {
		st := acc.IncarnationStats
		if st.Deliveries > 0 {
			st.First, st.Last = time.Unix(0, acc.first), time.Unix(0, acc.last)
		}
		stats[i] = st
	}
	slices.SortFunc(stats, func(a, b IncarnationStats) int { return naturalCompare(a.ID, b.ID) })
	c.rep.Incarnations = stats
}

// naturalCompare orders strings with runs of digits compared as numbers, so
// that r2.1 comes before r10.1 and shardId-9 before shardId-10.
func naturalCompare(a, b string) int {
	// Strings equal but for leading zeros are ordered plainly.
	return cmp.Or(naturalCompareRuns(a, b), strings.Compare(a, b))
}

func naturalCompareRuns(a, b string) int {
	for a != "" && b != "" {
		da, db := digitRun(a), digitRun(b)
		if da > 0 && db > 0 {
			na, nb := strings.TrimLeft(a[:da], "0"), strings.TrimLeft(b[:db], "0")
			if c := cmp.Or(cmp.Compare(len(na), len(nb)), strings.Compare(na, nb)); c != 0 {
				return c
			}
			a, b = a[da:], b[db:]
			continue
		}
		if a[0] != b[0] {
			return cmp.Compare(a[0], b[0])
		}
		a, b = a[1:], b[1:]
	}
	return cmp.Compare(len(a), len(b))
}

func digitRun(s string) int {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	return i
}
