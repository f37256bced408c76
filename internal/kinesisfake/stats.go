package kinesisfake

import "sort"

// ShardStats are the counters of one shard. Bytes are data plus partition
// key bytes, as AWS counts them against the limits.
type ShardStats struct {
	Stream  string
	ShardID string

	AcceptedRecords  int64
	AcceptedBytes    int64
	ThrottledRecords int64 // failed with ProvisionedThroughputExceededException by the write limits
	ThrottledBytes   int64
	FailedRecords    int64 // failed by the RecordFaultFunc

	// Most records/bytes accepted in one one-second window aligned to the
	// clock's whole seconds. With the default limiter these never exceed the
	// write limits.
	MaxAcceptedRecordsPerSecond int64
	MaxAcceptedBytesPerSecond   int64
	// Most records/bytes offered (accepted, throttled or failed) in one
	// aligned second: what the producer tried to send.
	MaxOfferedRecordsPerSecond int64
	MaxOfferedBytesPerSecond   int64

	GetRecordsCalls     int64 // GetRecords calls served
	GetRecordsThrottled int64 // GetRecords calls refused by the read limit
	RecordsRead         int64 // records returned by GetRecords
	BytesRead           int64 // data bytes returned by GetRecords
}

// Stats is a snapshot of the Fake's counters.
type Stats struct {
	// Requests counts every request received per operation name (including
	// failed and fault-injected ones); unknown operations count under "".
	Requests map[string]int64
	// Errors counts whole-request error responses per error type;
	// ErrorsByOp per operation.
	Errors     map[string]int64
	ErrorsByOp map[string]int64
	// The largest PutRecords/PutRecord request seen (parsed, before
	// validation): records, data plus partition-key bytes, and HTTP body
	// bytes (any operation).
	MaxRequestRecords   int64
	MaxRequestBytes     int64
	MaxRequestBodyBytes int64
	// Shards of all existing streams, ordered by stream name and shard id.
	Shards []ShardStats
}

// Shard returns the stats of one shard.
func (s Stats) Shard(stream, shardID string) (ShardStats, bool) {
	for _, sh := range s.Shards {
		if sh.Stream == stream && sh.ShardID == shardID {
			return sh, true
		}
	}
	return ShardStats{}, false
}

// Stream sums the counters of a stream's shards. The Max* fields are the
// largest of any one shard.
func (s Stats) Stream(stream string) ShardStats {
	t := ShardStats{Stream: stream}
	for _, sh := range s.Shards {
		if sh.Stream != stream {
			continue
		}
		t.AcceptedRecords += sh.AcceptedRecords
		t.AcceptedBytes += sh.AcceptedBytes
		t.ThrottledRecords += sh.ThrottledRecords
		t.ThrottledBytes += sh.ThrottledBytes
		t.FailedRecords += sh.FailedRecords
		t.MaxAcceptedRecordsPerSecond = max(t.MaxAcceptedRecordsPerSecond, sh.MaxAcceptedRecordsPerSecond)
		t.MaxAcceptedBytesPerSecond = max(t.MaxAcceptedBytesPerSecond, sh.MaxAcceptedBytesPerSecond)
		t.MaxOfferedRecordsPerSecond = max(t.MaxOfferedRecordsPerSecond, sh.MaxOfferedRecordsPerSecond)
		t.MaxOfferedBytesPerSecond = max(t.MaxOfferedBytesPerSecond, sh.MaxOfferedBytesPerSecond)
		t.GetRecordsCalls += sh.GetRecordsCalls
		t.GetRecordsThrottled += sh.GetRecordsThrottled
		t.RecordsRead += sh.RecordsRead
		t.BytesRead += sh.BytesRead
	}
	return t
}

// Stats returns a snapshot of the counters. It is safe to call concurrently
// with requests.
func (f *Fake) Stats() Stats {
	st := Stats{
		Requests:            map[string]int64{},
		Errors:              map[string]int64{},
		ErrorsByOp:          map[string]int64{},
		MaxRequestRecords:   f.maxReqRecs.Load(),
		MaxRequestBytes:     f.maxReqBytes.Load(),
		MaxRequestBodyBytes: f.maxReqBody.Load(),
	}
	for i := range f.opCount {
		if n := f.opCount[i].Load(); n > 0 {
			name := ""
			if i < numOps {
				name = opNames[i]
			}
			st.Requests[name] = n
		}
	}
	f.errMu.Lock()
	for k, v := range f.errByType {
		st.Errors[k] = v
	}
	for k, v := range f.errByOp {
		st.ErrorsByOp[k] = v
	}
	f.errMu.Unlock()

	f.mu.RLock()
	streams := make([]*stream, 0, len(f.streams))
	for _, s := range f.streams {
		streams = append(streams, s)
	}
	f.mu.RUnlock()
	sort.Slice(streams, func(i, j int) bool { return streams[i].name < streams[j].name })
	for _, s := range streams {
		s.mu.Lock()
		for _, sh := range s.shards {
			c := &sh.st
			st.Shards = append(st.Shards, ShardStats{
				Stream:                      s.name,
				ShardID:                     sh.id,
				AcceptedRecords:             c.acceptedRecords,
				AcceptedBytes:               c.acceptedBytes,
				ThrottledRecords:            c.throttledRecords,
				ThrottledBytes:              c.throttledBytes,
				FailedRecords:               c.failedRecords,
				MaxAcceptedRecordsPerSecond: c.acceptedRecSec.max,
				MaxAcceptedBytesPerSecond:   c.acceptedByteSec.max,
				MaxOfferedRecordsPerSecond:  c.offeredRecSec.max,
				MaxOfferedBytesPerSecond:    c.offeredByteSec.max,
				GetRecordsCalls:             c.getRecordsCalls,
				GetRecordsThrottled:         c.getRecordsThrot,
				RecordsRead:                 c.recordsRead,
				BytesRead:                   c.bytesRead,
			})
		}
		s.mu.Unlock()
	}
	return st
}

// ResetStats zeroes all counters (stored records, limits and faults are
// kept).
func (f *Fake) ResetStats() {
	for i := range f.opCount {
		f.opCount[i].Store(0)
	}
	f.maxReqRecs.Store(0)
	f.maxReqBytes.Store(0)
	f.maxReqBody.Store(0)
	f.errMu.Lock()
	f.errByType = map[string]int64{}
	f.errByOp = map[string]int64{}
	f.errMu.Unlock()
	f.mu.RLock()
	defer f.mu.RUnlock()
	for _, s := range f.streams {
		s.mu.Lock()
		for _, sh := range s.shards {
			sh.st = shardCounters{}
		}
		s.mu.Unlock()
	}
}
