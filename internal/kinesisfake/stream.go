package kinesisfake

import (
	"crypto/md5"
	"encoding/binary"
	"math/big"
	"math/bits"
	"sort"
	"strconv"
	"sync"
	"time"
)

// u128 is an unsigned 128-bit integer (a Kinesis hash key).
type u128 struct{ hi, lo uint64 }

func (a u128) less(b u128) bool { return a.hi < b.hi || (a.hi == b.hi && a.lo < b.lo) }

func u128FromBig(b *big.Int) u128 {
	var buf [16]byte
	b.FillBytes(buf[:])
	return u128{binary.BigEndian.Uint64(buf[:8]), binary.BigEndian.Uint64(buf[8:])}
}

// hashPartitionKey is how Kinesis maps a partition key to a hash key: the MD5
// digest of its UTF-8 bytes read as a big-endian 128-bit integer.
func hashPartitionKey(pk []byte) u128 {
	s := md5.Sum(pk)
	return u128{binary.BigEndian.Uint64(s[:8]), binary.BigEndian.Uint64(s[8:])}
}

// parseHashKey parses a decimal ExplicitHashKey. ok is false when it is not a
// plain decimal; overflow is true when it does not fit in 128 bits.
func parseHashKey(s []byte) (v u128, ok, overflow bool) {
	if len(s) == 0 || (len(s) > 1 && s[0] == '0') {
		return v, false, false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return v, false, false
		}
		if overflow {
			continue
		}
		// v = v*10 + d
		hiH, hiL := bits.Mul64(v.hi, 10)
		loH, loL := bits.Mul64(v.lo, 10)
		hi, c1 := bits.Add64(hiL, loH, 0)
		lo, c2 := bits.Add64(loL, uint64(c-'0'), 0)
		hi, c3 := bits.Add64(hi, 0, c2)
		if hiH != 0 || c1 != 0 || c3 != 0 {
			overflow = true
			continue
		}
		v = u128{hi, lo}
	}
	return v, true, overflow
}

const (
	seqLen        = 56
	seqCounterLen = 32
	seqShardLen   = 6
	seqGenLen     = 16
)

// storedRecord is one record in a shard. buf holds the partition key followed
// by the data; it is a capacity-clipped sub-slice of an arena chunk and is
// never modified after it is written.
type storedRecord struct {
	buf     []byte
	pkLen   uint32
	arrival int64 // unix nanos
}

func (r *storedRecord) pk() []byte   { return r.buf[:r.pkLen] }
func (r *storedRecord) data() []byte { return r.buf[r.pkLen:] }

type shardCounters struct {
	acceptedRecords, acceptedBytes   int64
	throttledRecords, throttledBytes int64
	failedRecords                    int64
	acceptedRecSec, acceptedByteSec  perSecondMax
	offeredRecSec, offeredByteSec    perSecondMax
	getRecordsCalls, getRecordsThrot int64
	recordsRead, bytesRead           int64
}

type shard struct {
	idx                   int
	id                    string
	parentID, adjParentID string // empty: none (no resharding yet)
	start, end            u128
	startStr, endStr      string
	startSeq              string
	endSeq                string // set when closed
	closed                bool

	// Record counters are 1-based; records[i] has counter first+i, and next is
	// the counter the next record gets. Counter 0 is the shard's starting
	// sequence number.
	first, next uint64
	records     []storedRecord
	arena       []byte
	lastArrival int64

	wRecords, wBytes, rCalls limiter
	gsiCalls                 limiter // GetShardIterator, with API rate limits

	st shardCounters
}

type stream struct {
	name    string
	arn     string
	gen     uint64
	created time.Time
	mode    string

	mu     sync.Mutex
	shards []*shard // by index; shard ids are shardId-%012d of the index
	open   []*shard // open shards ordered by start hash key
}

const arenaMaxChunk = 4 << 20

// store copies pk and data into the shard's arena and appends the record.
// It returns the record's counter.
func (sh *shard) store(pk, data []byte, arrival int64, discard bool) uint64 {
	if arrival < sh.lastArrival {
		arrival = sh.lastArrival
	}
	sh.lastArrival = arrival
	c := sh.next
	sh.next++
	if discard {
		sh.first = sh.next
		return c
	}
	n := len(pk) + len(data)
	if n > cap(sh.arena)-len(sh.arena) {
		size := 2 * cap(sh.arena)
		if size < 64<<10 {
			size = 64 << 10
		}
		if size > arenaMaxChunk {
			size = arenaMaxChunk
		}
		if size < n {
			size = n
		}
		sh.arena = make([]byte, 0, size)
	}
	s := len(sh.arena)
	sh.arena = append(sh.arena, pk...)
	sh.arena = append(sh.arena, data...)
	sh.records = append(sh.records, storedRecord{
		buf:     sh.arena[s:len(sh.arena):len(sh.arena)],
		pkLen:   uint32(len(pk)),
		arrival: arrival,
	})
	return c
}

// route returns the open shard whose hash-key range holds h.
func (s *stream) route(h u128) *shard {
	open := s.open
	i := sort.Search(len(open), func(i int) bool { return h.less(open[i].start) })
	// open[i-1] is the last shard starting at or below h.
	if i == 0 {
		return nil
	}
	sh := open[i-1]
	if sh.end.less(h) {
		return nil
	}
	return sh
}

func shardID(i int) string {
	b := make([]byte, 0, 20)
	b = append(b, "shardId-"...)
	return string(appendPadded(b, uint64(i), 12))
}

// parseShardID returns the index of a shardId-NNNNNNNNNNNN id.
func parseShardID(id string) (int, bool) {
	const p = "shardId-"
	if len(id) != len(p)+12 || id[:len(p)] != p {
		return 0, false
	}
	n, err := strconv.ParseUint(id[len(p):], 10, 31)
	if err != nil {
		return 0, false
	}
	return int(n), true
}

func appendPadded(b []byte, v uint64, width int) []byte {
	var tmp [20]byte
	d := strconv.AppendUint(tmp[:0], v, 10)
	for i := len(d); i < width; i++ {
		b = append(b, '0')
	}
	return append(b, d...)
}

// appendSeq appends the sequence number of counter c in shard sh of s.
// Layout: "49" + 16-digit stream generation + 6-digit shard index +
// 32-digit zero-padded counter = 56 digits.
func (s *stream) appendSeq(b []byte, shardIdx int, c uint64) []byte {
	b = append(b, '4', '9')
	b = appendPadded(b, s.gen, seqGenLen)
	b = appendPadded(b, uint64(shardIdx), seqShardLen)
	return appendPadded(b, c, seqCounterLen)
}

func (s *stream) seq(shardIdx int, c uint64) string {
	return string(s.appendSeq(make([]byte, 0, seqLen), shardIdx, c))
}

// parseSeq returns the shard index and counter of a sequence number of s.
func (s *stream) parseSeq(seq string) (shardIdx int, c uint64, ok bool) {
	if len(seq) != seqLen || seq[:2] != "49" {
		return 0, 0, false
	}
	for i := 0; i < len(seq); i++ {
		if seq[i] < '0' || seq[i] > '9' {
			return 0, 0, false
		}
	}
	gen, _ := strconv.ParseUint(seq[2:2+seqGenLen], 10, 64)
	if gen != s.gen {
		return 0, 0, false
	}
	si, _ := strconv.ParseUint(seq[2+seqGenLen:2+seqGenLen+seqShardLen], 10, 32)
	cs := seq[2+seqGenLen+seqShardLen:]
	for i := 0; i < seqCounterLen-20; i++ {
		if cs[i] != '0' {
			return 0, 0, false
		}
	}
	c, err := strconv.ParseUint(cs[seqCounterLen-20:], 10, 64)
	if err != nil {
		return 0, 0, false
	}
	return int(si), c, true
}

var maxHashKey = new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 128), big.NewInt(1))

// newStream builds a stream of n shards over evenly split hash-key ranges.
func newStream(name, arn string, gen uint64, created time.Time, n int, mode string, f *Fake) *stream {
	s := &stream{name: name, arn: arn, gen: gen, created: created, mode: mode}
	space := new(big.Int).Lsh(big.NewInt(1), 128)
	size := new(big.Int).Div(space, big.NewInt(int64(n)))
	for i := 0; i < n; i++ {
		start := new(big.Int).Mul(size, big.NewInt(int64(i)))
		end := new(big.Int).Sub(new(big.Int).Add(start, size), big.NewInt(1))
		if i == n-1 {
			end = maxHashKey
		}
		sh := &shard{
			idx:      i,
			id:       shardID(i),
			start:    u128FromBig(start),
			end:      u128FromBig(end),
			startStr: start.String(),
			endStr:   end.String(),
			first:    1,
			next:     1,
			wRecords: newLimiter(f.cfg.writeRecords, f.cfg.tokenBucket),
			wBytes:   newLimiter(f.cfg.writeBytes, f.cfg.tokenBucket),
			rCalls:   newLimiter(f.cfg.readCalls, f.cfg.tokenBucket),
		}
		if f.cfg.apiLimits {
			sh.gsiCalls = newLimiter(5, f.cfg.tokenBucket)
		}
		sh.startSeq = s.seq(i, 0)
		s.shards = append(s.shards, sh)
		s.open = append(s.open, sh)
	}
	return s
}
