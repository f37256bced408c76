package kinesisfake

import (
	"encoding/base64"
	"encoding/binary"
	"math"
	"slices"
	"sort"
	"strconv"
	"time"
)

// iterator is the decoded form of a shard iterator. On the wire it is the
// standard base64 of a small binary record, opaque to clients.
type iterator struct {
	gen    uint64
	shard  uint32
	pos    uint64 // counter of the next record to return
	issued int64  // unix nanos
	stream string
}

const iterVersion = 0x4b // 'K'

func (it *iterator) appendRaw(b []byte) []byte {
	b = append(b, iterVersion)
	b = binary.BigEndian.AppendUint64(b, it.gen)
	b = binary.BigEndian.AppendUint32(b, it.shard)
	b = binary.BigEndian.AppendUint64(b, it.pos)
	b = binary.BigEndian.AppendUint64(b, uint64(it.issued))
	return append(b, it.stream...)
}

// appendEncoded appends the base64 form of it to b.
func (it *iterator) appendEncoded(b []byte) []byte {
	var tmp [160]byte
	raw := it.appendRaw(tmp[:0])
	n := base64.StdEncoding.EncodedLen(len(raw))
	b = slices.Grow(b, n)
	base64.StdEncoding.Encode(b[len(b):len(b)+n], raw)
	return b[:len(b)+n]
}

func (it *iterator) String() string { return string(it.appendEncoded(nil)) }

func decodeIterator(s []byte) (it iterator, ok bool) {
	var tmp [192]byte
	if base64.StdEncoding.DecodedLen(len(s)) > len(tmp) {
		return it, false
	}
	n, err := base64.StdEncoding.Decode(tmp[:], s)
	if err != nil || n < 29 || tmp[0] != iterVersion {
		return it, false
	}
	b := tmp[1:n]
	it.gen = binary.BigEndian.Uint64(b)
	it.shard = binary.BigEndian.Uint32(b[8:])
	it.pos = binary.BigEndian.Uint64(b[12:])
	it.issued = int64(binary.BigEndian.Uint64(b[20:]))
	it.stream = string(b[28:])
	return it, it.stream != ""
}

type getShardIteratorInput struct {
	StreamName             string
	StreamARN              string
	ShardId                *string
	ShardIteratorType      *string
	StartingSequenceNumber *string
	Timestamp              *float64
}

func (f *Fake) getShardIterator(in *getShardIteratorInput) (any, *apiError) {
	if in.ShardId == nil {
		return nil, badRequest(ErrValidation, "1 validation error detected: Value null at 'shardId' failed to satisfy constraint: Member must not be null")
	}
	if in.ShardIteratorType == nil {
		return nil, badRequest(ErrValidation, "1 validation error detected: Value null at 'shardIteratorType' failed to satisfy constraint: Member must not be null")
	}
	typ := *in.ShardIteratorType
	switch typ {
	case "AT_SEQUENCE_NUMBER", "AFTER_SEQUENCE_NUMBER", "TRIM_HORIZON", "LATEST", "AT_TIMESTAMP":
	default:
		return nil, badRequest(ErrValidation, "1 validation error detected: Value '%s' at 'shardIteratorType' failed to satisfy constraint: Member must satisfy enum value set: [AFTER_SEQUENCE_NUMBER, AT_SEQUENCE_NUMBER, AT_TIMESTAMP, TRIM_HORIZON, LATEST]", typ)
	}
	s, ae := f.lookup(in.StreamName, in.StreamARN)
	if ae != nil {
		return nil, ae
	}
	sid := *in.ShardId
	idx, ok := parseShardID(sid)
	s.mu.Lock()
	defer s.mu.Unlock()
	if !ok || idx >= len(s.shards) {
		return nil, badRequest(ErrResourceNotFound, "Shard %s in stream %s under account %s does not exist", sid, s.name, f.cfg.account)
	}
	sh := s.shards[idx]
	now := f.now().UnixNano()
	if f.cfg.apiLimits {
		sh.gsiCalls.refresh(now)
		if !sh.gsiCalls.can(1) {
			return nil, badRequest(ErrProvisionedThroughput, "Rate exceeded for shard %s in stream %s under account %s.", sh.id, s.name, f.cfg.account)
		}
		sh.gsiCalls.take(1)
	}
	var pos uint64
	switch typ {
	case "TRIM_HORIZON":
		pos = sh.first
	case "LATEST":
		pos = sh.next
	case "AT_SEQUENCE_NUMBER", "AFTER_SEQUENCE_NUMBER":
		if in.StartingSequenceNumber == nil || *in.StartingSequenceNumber == "" {
			return nil, badRequest(ErrInvalidArgument, "StartingSequenceNumber must be specified for shard iterator type %s.", typ)
		}
		seq := *in.StartingSequenceNumber
		si, c, ok := s.parseSeq(seq)
		if !ok || si != idx {
			return nil, badRequest(ErrInvalidArgument, "StartingSequenceNumber %s used in GetShardIterator on shard %s in stream %s under account %s is invalid because it did not come from this stream.", seq, sh.id, s.name, f.cfg.account)
		}
		if c >= sh.next {
			return nil, badRequest(ErrInvalidArgument, "StartingSequenceNumber %s used in GetShardIterator on shard %s in stream %s under account %s is invalid.", seq, sh.id, s.name, f.cfg.account)
		}
		pos = c
		if typ == "AFTER_SEQUENCE_NUMBER" {
			pos = c + 1
		}
		pos = max(pos, sh.first)
	case "AT_TIMESTAMP":
		if in.Timestamp == nil {
			return nil, badRequest(ErrInvalidArgument, "The timestamp must be specified for an AT_TIMESTAMP shard iterator.")
		}
		t := int64(math.Round(*in.Timestamp*1e3)) * 1e6
		recs := sh.records
		i := sort.Search(len(recs), func(i int) bool { return recs[i].arrival >= t })
		pos = sh.first + uint64(i)
	}
	it := iterator{gen: s.gen, shard: uint32(idx), pos: pos, issued: now, stream: s.name}
	return struct{ ShardIterator string }{it.String()}, nil
}

func (f *Fake) getRecords(body, out []byte) ([]byte, *apiError) {
	sc := scanner{b: body}
	var rawIt []byte
	limit := int64(MaxGetRecordsLimit)
	sc.object(func(key []byte) {
		switch string(key) {
		case "ShardIterator":
			if !sc.null() {
				rawIt = sc.text()
			}
		case "Limit":
			if !sc.null() {
				limit = sc.int()
			}
		default:
			sc.skip()
		}
	})
	sc.end()
	if sc.err != nil {
		return nil, badRequest(ErrSerialization, "Could not parse request body: %v", sc.err)
	}
	if rawIt == nil {
		return nil, badRequest(ErrValidation, "1 validation error detected: Value null at 'shardIterator' failed to satisfy constraint: Member must not be null")
	}
	if limit < 1 || limit > MaxGetRecordsLimit {
		rel := "greater than or equal to 1"
		if limit > 1 {
			rel = "less than or equal to 10000"
		}
		return nil, badRequest(ErrValidation, "1 validation error detected: Value '%d' at 'limit' failed to satisfy constraint: Member must have value %s", limit, rel)
	}
	it, ok := decodeIterator(rawIt)
	if !ok {
		return nil, badRequest(ErrInvalidArgument, "Invalid ShardIterator.")
	}
	nowT := f.now()
	now := nowT.UnixNano()
	if now-it.issued > int64(IteratorTTL) {
		return nil, badRequest(ErrExpiredIterator, "Iterator expired. The iterator was created at time %s while right now it is %s which is further in the future than the tolerated delay of %d milliseconds.",
			time.Unix(0, it.issued).UTC().Format(time.UnixDate), nowT.UTC().Format(time.UnixDate), IteratorTTL.Milliseconds())
	}
	f.mu.RLock()
	s := f.streams[it.stream]
	f.mu.RUnlock()
	if s == nil || s.gen != it.gen || int(it.shard) >= len(s.shards) {
		return nil, badRequest(ErrResourceNotFound, "Shard %s in stream %s under account %s does not exist", shardID(int(it.shard)), it.stream, f.cfg.account)
	}

	s.mu.Lock()
	sh := s.shards[it.shard]
	sh.rCalls.refresh(now)
	if !sh.rCalls.can(1) {
		sh.st.getRecordsThrot++
		s.mu.Unlock()
		return nil, badRequest(ErrProvisionedThroughput, "Rate exceeded for Shard - %s in stream %s under account %s.", sh.id, s.name, f.cfg.account)
	}
	sh.rCalls.take(1)
	sh.st.getRecordsCalls++
	pos := min(max(it.pos, sh.first), sh.next)
	avail := sh.records[pos-sh.first:]
	n, size, enc := 0, 0, 0
	for n < len(avail) && int64(n) < limit {
		d := len(avail[n].buf) - int(avail[n].pkLen)
		if n > 0 && size+d > MaxGetRecordsBytes {
			break
		}
		size += d
		enc += base64.StdEncoding.EncodedLen(d) + 2*int(avail[n].pkLen)
		n++
	}
	recs := avail[:n:n]
	next := pos + uint64(n)
	var behind int64
	if next < sh.next {
		behind = max((now-sh.records[next-sh.first].arrival)/1e6, 0)
	}
	closedAtEnd := sh.closed && next >= sh.next
	sh.st.recordsRead += int64(n)
	sh.st.bytesRead += int64(size)
	s.mu.Unlock()

	// Stored records are immutable, so encoding runs without the lock.
	out = slices.Grow(out, 256+enc+n*(110+seqLen))
	out = append(out, `{"MillisBehindLatest":`...)
	out = strconv.AppendInt(out, behind, 10)
	if !closedAtEnd {
		out = append(out, `,"NextShardIterator":"`...)
		nit := iterator{gen: s.gen, shard: it.shard, pos: next, issued: now, stream: s.name}
		out = nit.appendEncoded(out)
		out = append(out, '"')
	} else {
		out = append(out, `,"ChildShards":[]`...)
	}
	out = append(out, `,"Records":[`...)
	for i := range recs {
		r := &recs[i]
		if i > 0 {
			out = append(out, ',')
		}
		out = append(out, `{"ApproximateArrivalTimestamp":`...)
		ms := r.arrival / 1e6
		out = strconv.AppendInt(out, ms/1000, 10)
		out = append(out, '.')
		out = appendPadded(out, uint64(ms%1000), 3)
		out = append(out, `,"Data":"`...)
		d := r.data()
		m := base64.StdEncoding.EncodedLen(len(d))
		out = slices.Grow(out, m)
		base64.StdEncoding.Encode(out[len(out):len(out)+m], d)
		out = out[:len(out)+m]
		out = append(out, `","PartitionKey":`...)
		out = appendBytes(out, r.pk())
		out = append(out, `,"SequenceNumber":"`...)
		out = s.appendSeq(out, int(it.shard), pos+uint64(i))
		out = append(out, `"}`...)
	}
	out = append(out, "]}"...)
	return out, nil
}
