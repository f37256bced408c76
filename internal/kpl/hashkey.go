package kpl

import (
	"crypto/md5"
	"encoding/binary"
	"errors"
	"math/bits"
)

// HashKey is a position on Kinesis' 128-bit hash-key ring.
type HashKey struct{ Hi, Lo uint64 }

// Less reports whether h comes before o on the ring.
func (h HashKey) Less(o HashKey) bool {
	return h.Hi < o.Hi || (h.Hi == o.Hi && h.Lo < o.Lo)
}

// String returns h in decimal without leading zeros, the form Kinesis takes as an explicit hash
// key.
func (h HashKey) String() string {
	var buf [39]byte // 2^128-1 has 39 digits
	i := len(buf)
	for {
		var r uint64
		h.Hi, r = bits.Div64(0, h.Hi, 10)
		h.Lo, r = bits.Div64(r, h.Lo, 10)
		i--
		buf[i] = byte('0' + r)
		if h.Hi == 0 && h.Lo == 0 {
			return string(buf[i:])
		}
	}
}

// PartitionKeyHash is where Kinesis puts a partition key: the MD5 digest of its UTF-8 bytes read
// as a big-endian unsigned 128-bit integer.
func PartitionKeyHash(partitionKey string) HashKey {
	sum := md5.Sum([]byte(partitionKey))
	return HashKey{Hi: binary.BigEndian.Uint64(sum[:8]), Lo: binary.BigEndian.Uint64(sum[8:])}
}

var errHashKey = errors.New("not a decimal integer between 0 and 2^128-1")

// ParseHashKey reads a decimal hash key in [0, 2^128-1]. Leading zeros are accepted, as the
// KCL's BigInteger accepts them.
func ParseHashKey(s string) (HashKey, error) {
	if s == "" {
		return HashKey{}, errHashKey
	}
	var h HashKey
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return HashKey{}, errHashKey
		}
		// h = h*10 + digit, failing when it overflows 128 bits.
		loHi, lo := bits.Mul64(h.Lo, 10)
		hiHi, hi := bits.Mul64(h.Hi, 10)
		hi, carry := bits.Add64(hi, loHi, 0)
		if hiHi != 0 || carry != 0 {
			return HashKey{}, errHashKey
		}
		lo, carry = bits.Add64(lo, uint64(c-'0'), 0)
		hi, carry = bits.Add64(hi, 0, carry)
		if carry != 0 {
			return HashKey{}, errHashKey
		}
		h = HashKey{Hi: hi, Lo: lo}
	}
	return h, nil
}

// HashKey is where Kinesis would put r: its explicit hash key when it has one, else its partition
// key's hash. The KCL compares it with a shard's range to drop user records of an aggregate that
// belong to another shard after a reshard.
func (r UserRecord) HashKey() (HashKey, error) {
	if r.ExplicitHashKey == "" {
		return PartitionKeyHash(r.PartitionKey), nil
	}
	return ParseHashKey(r.ExplicitHashKey)
}
