package output

import (
	"errors"
	"fmt"
	"sort"
	"unicode/utf8"

	"github.com/benthos-kinesis/benthos-kinesis/internal/kpl"
)

// hashKey is a position on Kinesis' 128-bit hash-key ring (one type with the input's KPL
// range checks).
type hashKey = kpl.HashKey

// partitionHash is where Kinesis puts a partition key.
func partitionHash(key string) hashKey { return kpl.PartitionKeyHash(key) }

// parseHashKey reads an explicit hash key or a shard's hash-key bound, a decimal integer in
// [0, 2^128-1], without the allocations of math/big. Leading zeros are accepted; an explicit hash
// key is sent in canonical form (canonicalHashKey), since Kinesis refuses them.
func parseHashKey(s string) (hashKey, error) { return kpl.ParseHashKey(s) }

// canonicalHashKey is s, already parsed as h, as Kinesis accepts an explicit hash key: without
// leading zeros (pattern 0|([1-9]\d{0,38})). A key it refuses would fail the whole PutRecords
// request, not the record alone.
func canonicalHashKey(s string, h hashKey) string {
	if len(s) > 1 && s[0] == '0' {
		return h.String()
	}
	return s
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
		if end.Less(start) {
			return nil, fmt.Errorf("shard %s: ending hash key below starting hash key", s.id)
		}
		m.ranges = append(m.ranges, shardRange{start: start, end: end, shard: state(s.id)})
	}
	sort.Slice(m.ranges, func(i, j int) bool { return m.ranges[i].start.Less(m.ranges[j].start) })
	return m, nil
}

// lookup returns the open shard whose range holds h, or nil when no open
// shard does (a gap while the stream is being resharded).
func (m *shardMap) lookup(h hashKey) *shardState {
	// The first range that starts above h; the one before it is the candidate.
	i := sort.Search(len(m.ranges), func(i int) bool { return h.Less(m.ranges[i].start) })
	if i == 0 {
		return nil
	}
	r := &m.ranges[i-1]
	if r.end.Less(h) {
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
