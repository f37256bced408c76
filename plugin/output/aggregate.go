package output

import (
	"context"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/benthos-kinesis/benthos-kinesis/internal/kpl"
)

// Aggregation (aggregation.enabled): when a request is filled, the records
// waiting for a shard are packed, in the order fill would take them, into KPL
// aggregated records, each then taken by the shard's limiter and the request
// as one Kinesis record of its size. Nothing waits for more records: an
// aggregate is what the queue holds when the shard's budget allows a request,
// which at the limit is most of a burst. The queues are per predicted shard,
// so records with an explicit hash key aggregate only with records of their
// shard, and the aggregate, routed by its first record's hash key, lands there.

// aggregatePartitionKey is the partition key the KPL gives an aggregate of
// two or more records; Kinesis counts it against the record's size.
const aggregatePartitionKey = "a"

// queueCursor walks the records fill may take from q, in fill's order: its
// loose records, then its free lanes in arrival order. pop takes the record
// peek returned into req, marking its lane busy.
type queueCursor struct {
	d    *dispatcher
	q    *shardQueue
	req  *request
	lane int   // the index in q.lanes being taken from; -1: the loose records
	mine *lane // the lane this cursor made busy last, which it may go on taking from
}

func (c *queueCursor) peek() *outRecord {
	q := c.q
	if c.lane < 0 {
		for r := q.loose.peek(); r != nil; r = q.loose.peek() {
			if !r.job.abandoned {
				return r
			}
			q.loose.pop()
			q.count--
			q.bytes -= r.size
			c.d.release(r)
		}
		c.lane = 0
	}
	for ; c.lane < len(q.lanes); c.lane++ {
		l := q.lanes[c.lane]
		if l.waiting() == 0 || l.job.abandoned || (l.busy && l != c.mine) {
			continue
		}
		return l.recs[l.head]
	}
	return nil
}

func (c *queueCursor) pop() {
	q := c.q
	var r *outRecord
	if c.lane < 0 {
		r = q.loose.pop()
	} else {
		l := q.lanes[c.lane]
		r = l.recs[l.head]
		l.recs[l.head] = nil
		l.head++
		if !l.busy {
			l.busy = true
			q.free--
			c.req.lanes = append(c.req.lanes, l)
			c.mine = l
		}
	}
	q.count--
	q.bytes -= r.size
}

// skip passes over the rest of the current source: its head is a record
// that needs a request of its own, and nothing behind it may overtake it.
func (c *queueCursor) skip() { c.lane++ }

// fillAggregated is fill for a mapped shard with aggregation on.
func (d *dispatcher) fillAggregated(req *request, q *shardQueue, now time.Time) (refused time.Duration) {
	c := queueCursor{d: d, q: q, req: req, lane: -1}
	lim := q.shard.limiter
	for !req.full() {
		r := c.peek()
		if r == nil {
			return 0
		}
		if !req.fits(r) {
			if r.size > maxRequestBytes {
				c.skip() // it waits for a request of its own
				continue
			}
			return 0
		}
		room, wait := lim.room(now, r.size)
		if wait > 0 {
			return wait
		}
		e := d.aggregate(&c, r, min(room, maxRequestBytes-req.bytes))
		// room admitted e: an aggregate of two or more is within it, and a
		// lone record is r.
		lim.take(now, e.size)
		req.add(q, e)
		if req.alone {
			return 0
		}
	}
	return 0
}

// aggregate pops first and the records after it that fit with it in an
// aggregate of at most room bytes (as Kinesis counts them), and returns the
// Kinesis record they make: first itself when nothing joins it, or when it
// cannot be aggregated (too large, or bare), so a record too large goes alone
// after the aggregate before it.
func (d *dispatcher) aggregate(c *queueCursor, first *outRecord, room int) *outRecord {
	a := d.agg
	c.pop()
	if first.bare || a.Add(userRecord(first)) != nil {
		// Too large, or keys the KPL would refuse: as it is, and Kinesis
		// judges.
		return first
	}
	limit := room - len(aggregatePartitionKey)
	members := []*outRecord{first}
	for {
		r := c.peek()
		if r == nil || r.bare || r.size > limit {
			break
		}
		u := userRecord(r)
		if a.Size()+a.AddedSize(u) > limit || a.Add(u) != nil {
			break
		}
		c.pop()
		members = append(members, r)
	}
	if len(members) == 1 {
		a.Reset() // alone it goes as it is, which Flush would copy
		return first
	}
	agg, _ := a.Flush()
	return &outRecord{
		data:         agg.Data,
		partitionKey: agg.PartitionKey,
		explicitHash: agg.ExplicitHashKey,
		hash:         first.hash,
		size:         len(agg.Data) + len(agg.PartitionKey),
		shard:        first.shard,
		members:      members,
	}
}

func userRecord(r *outRecord) kpl.UserRecord {
	return kpl.UserRecord{PartitionKey: r.partitionKey, ExplicitHashKey: r.explicitHash, Data: r.data}
}

// resendStrays marks for a new put the user records of agg, which landed on
// shard landed instead of the predicted one (the stream was resharded), that
// the landing shard does not own: consumers that deaggregate (the KCL, this
// project's input) skip them there. Each goes again bare, so that Kinesis
// routes it by its own key whatever the shard map says, and once only. The
// KPL puts every user record of such an aggregate again, which consumers see
// twice when they do not skip; this puts only those that are skipped. When
// the map does not know the landing shard (send refreshes it first, so only
// if that failed), only the records sharing the first one's hash key are
// sure to belong there, and the rest go again. It returns how many go again.
func resendStrays(m *shardMap, agg *outRecord, landed string, now time.Time) int {
	start, end, known := m.rangeOf(landed)
	n := 0
	for _, u := range agg.members {
		if known && !u.hash.Less(start) && !end.Less(u.hash) || !known && u.hash == agg.hash {
			continue
		}
		u.done, u.bare, u.notBefore = false, true, now
		n++
	}
	return n
}

// learnLandingShards refreshes the shard map when an aggregate of out landed
// on a shard the map does not know, so that resendStrays knows which of its
// records that shard owns. This happens only while the stream is resharded,
// about once per new shard.
func (w *kinesisWriter) learnLandingShards(ctx context.Context, req *request, out *kinesis.PutRecordsOutput) {
	m := w.shardMap.Load()
	for j, r := range req.recs {
		res := out.Records[j]
		if r.members == nil || res.ErrorCode != nil || (r.shard != nil && aws.ToString(res.ShardId) == r.shard.id) {
			continue
		}
		if _, _, ok := m.rangeOf(aws.ToString(res.ShardId)); ok {
			continue
		}
		if err := w.refresh(ctx); err != nil && ctx.Err() == nil {
			w.log.Warnf("Refreshing the shard map of %s to place aggregated records: %v", w.conf.stream, err)
		}
		return
	}
}
