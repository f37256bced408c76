package output

import (
	"crypto/md5"
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"sort"
	"unicode/utf8"
)

// hashKey is a position on Kinesis' 128-bit hash-key ring.
type hashKey struct{ hi, lo uint64 }

func (a hashKey) less(b hashKey) bool {
	return a.hi < b.hi || (a.hi == b.hi && a.lo < b.lo)
}

// partitionHash is where Kinesis puts a partition key: the MD5 digest of its
// UTF-8 bytes read as a big-endian unsigned 128-bit integer.
func partitionHash(key string) hashKey {
	sum := md5.Sum([]byte(key))
	return hashKey{hi: binary.BigEndian.Uint64(sum[:8]), lo: binary.BigEndian.Uint64(sum[8:])}
}

var errHashKeyRange = errors.New("not a decimal integer between 0 and 2^128-1")

// parseHashKey reads an explicit hash key or a shard's hash-key bound, a
// decimal integer in [0, 2^128-1], without the allocations of math/big.
func parseHashKey(s string) (hashKey, error) {
	if s == "" || len(s) > 39 {
		return hashKey{}, errHashKeyRange
	}
	var h hashKey
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return hashKey{}, errHashKeyRange
		}
		// h = h*10 + digit, failing on overflow of 128 bits.
		loHi, lo := bits.Mul64(h.lo, 10)
		hiHi, hi := bits.Mul64(h.hi, 10)
		if hiHi != 0 {
			return hashKey{}, errHashKeyRange
		}
		hi, carry := bits.Add64(hi, loHi, 0)
		if carry != 0 {
			return hashKey{}, errHashKeyRange
		}
		lo, carry = bits.Add64(lo, uint64(c-'0'), 0)
		hi, carry = bits.Add64(hi, 0, carry)
		if carry != 0 {
			return hashKey{}, errHashKeyRange
		}
		h = hashKey{hi: hi, lo: lo}
	}
	return h, nil
}

// checkPartitionKey applies Kinesis' rule for partition keys: 1 to 256
// Unicode characters.
func checkPartitionKey(key string) error {
	if key == "" {
		return errors.New("partition key is empty (Kinesis needs 1 to 256 characters)")
	}
	if n := utf8.RuneCountInString(key); n > 256 {
		return fmt.Errorf("partition key has %d characters (Kinesis allows at most 256)", n)
	}
	return nil
}

// shardRange is one open shard and the hash keys it owns, inclusive.
type shardRange struct {
	start, end hashKey
	shard      *shardState
}

// shardMap is the stream's open shards sorted by hash-key range. It is built
// whole on every refresh and never changed after, so readers share it freely.
type shardMap struct {
	ranges []shardRange
}

// shardBounds is what the map needs of one shard from ListShards.
type shardBounds struct {
	id, startingHashKey, endingHashKey string
}

// newShardMap sorts the open shards by range. state returns the state kept
// for a shard id across refreshes (its limiter, its metric labels).
func newShardMap(open []shardBounds, state func(id string) *shardState) (*shardMap, error) {
	m := &shardMap{ranges: make([]shardRange, 0, len(open))}
	for _, s := range open {
		start, err := parseHashKey(s.startingHashKey)
		if err != nil {
			return nil, fmt.Errorf("shard %s: starting hash key %q: %w", s.id, s.startingHashKey, err)
		}
		end, err := parseHashKey(s.endingHashKey)
		if err != nil {
			return nil, fmt.Errorf("shard %s: ending hash key %q: %w", s.id, s.endingHashKey, err)
		}
		if end.less(start) {
			return nil, fmt.Errorf("shard %s: ending hash key below starting hash key", s.id)
		}
		m.ranges = append(m.ranges, shardRange{start: start, end: end, shard: state(s.id)})
	}
	sort.Slice(m.ranges, func(i, j int) bool { return m.ranges[i].start.less(m.ranges[j].start) })
	return m, nil
}

// lookup returns the open shard whose range holds h, or nil when no open
// shard does (a gap while the stream is being resharded).
func (m *shardMap) lookup(h hashKey) *shardState {
	// The first range that starts above h; the one before it is the candidate.
	i := sort.Search(len(m.ranges), func(i int) bool { return h.less(m.ranges[i].start) })
	if i == 0 {
		return nil
	}
	r := &m.ranges[i-1]
	if r.end.less(h) {
		return nil
	}
	return r.shard
}

// rangeOf returns the hash-key range of the open shard id; false when the map
// does not hold it.
func (m *shardMap) rangeOf(id string) (start, end hashKey, ok bool) {
	if m == nil {
		return hashKey{}, hashKey{}, false
	}
	for _, r := range m.ranges {
		if r.shard.id == id {
			return r.start, r.end, true
		}
	}
	return hashKey{}, hashKey{}, false
}
