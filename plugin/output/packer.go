package output

import (
	"time"
)

// Kinesis' PutRecords limits.
const (
	maxRequestRecords = 500
	maxRequestBytes   = 5 << 20
	defaultMaxRecord  = 1 << 20
)

// outRecord is one message of a batch on its way to Kinesis.
type outRecord struct {
	data         []byte
	partitionKey string
	explicitHash string // "" unless hash_key gave one
	hash         hashKey
	size         int // what Kinesis counts: data plus partition key bytes
	index        int // the message's index in the batch

	shard    *shardState // predicted from the shard map...
	shardMap *shardMap   // ...of this version

	retryState
	err  error // set when the record has failed for good
	done bool
}

// admitFunc asks the rate limiter of a record's shard whether the record can
// be sent at now, and if not, how long until it might.
type admitFunc func(r *outRecord, now time.Time) (bool, time.Duration)

// packRequest chooses the next PutRecords request from the pending records
// (indexes into recs, in batch order) and appends their indexes to dst.
//
// A request holds at most maxRequestRecords records and maxRequestBytes
// bytes. A record over maxRequestBytes (max_record_size allows up to 10 MiB)
// can never share a request: it is returned alone, in its place in batch
// order, and the writer sends it through PutRecord. A record waiting out a retry backoff, or whose shard is at its limit,
// stays behind while later records to other shards go ahead, unless
// orderPerKey is set: then a record never overtakes an earlier pending
// record of its partition key, so at most one record of a key is in flight.
//
// When nothing can be sent, wait says how long until something might.
func packRequest(recs []outRecord, pending []int, now time.Time, orderPerKey bool, admit admitFunc, dst []int, seenKeys map[string]struct{}) (req []int, wait time.Duration) {
	req = dst[:0]
	bytes := 0
	if orderPerKey {
		clear(seenKeys)
	}
	for _, i := range pending {
		r := &recs[i]
		if orderPerKey {
			if _, seen := seenKeys[r.partitionKey]; seen {
				continue
			}
			seenKeys[r.partitionKey] = struct{}{}
		}
		if r.size > maxRequestBytes {
			if d := r.notBefore.Sub(now); d > 0 {
				wait = minWait(wait, d)
				continue
			}
			if len(req) > 0 {
				// The records before it go first, as when a request is full.
				return req, 0
			}
			ok, d := admit(r, now)
			if !ok {
				wait = minWait(wait, d)
				continue
			}
			return append(req, i), 0
		}
		if len(req) == maxRequestRecords || bytes+r.size > maxRequestBytes {
			// Full: what is left goes in the next request, at once.
			return req, 0
		}
		if d := r.notBefore.Sub(now); d > 0 {
			wait = minWait(wait, d)
			continue
		}
		ok, d := admit(r, now)
		if !ok {
			wait = minWait(wait, d)
			continue
		}
		req = append(req, i)
		bytes += r.size
	}
	if len(req) > 0 {
		wait = 0
	}
	return req, wait
}

// sendsAlone says whether a request is one record over the PutRecords budget,
// to be sent through PutRecord.
func sendsAlone(recs []outRecord, req []int) bool {
	return len(req) == 1 && recs[req[0]].size > maxRequestBytes
}

func minWait(cur, d time.Duration) time.Duration {
	if cur == 0 || d < cur {
		return d
	}
	return cur
}
