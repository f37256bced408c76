// Package kpl reads and writes the aggregated record format of the Kinesis Producer Library
// (KPL), which packs many user records into one Kinesis record, the way the KPL writes it and the
// Kinesis Client Library (KCL) reads it.
//
// An aggregated record is the 4 magic bytes F3 89 9A C2, a proto2 AggregatedRecord message and
// the 16-byte MD5 digest of that message:
//
//	message AggregatedRecord {
//	  repeated string partition_key_table     = 1;
//	  repeated string explicit_hash_key_table = 2;
//	  repeated Record records                 = 3;
//	}
//	message Tag {
//	  required string key   = 1;
//	  optional string value = 2;
//	}
//	message Record {
//	  required uint64 partition_key_index     = 1;
//	  optional uint64 explicit_hash_key_index = 2;
//	  required bytes  data                    = 3;
//	  repeated Tag    tags                    = 4;
//	}
//
// Deaggregate splits one Kinesis record into its user records; a user record's position in the
// result is its sub-sequence number. Aggregator packs user records into aggregated records up to a
// size limit.
//
// The wire format is read and written with google.golang.org/protobuf/encoding/protowire, with
// the semantics of a generated proto2 parser (which the KCL uses): fields in any order, unknown
// fields and known field numbers with another wire type skipped, the last value of a repeated
// singular field winning, and a missing required field an error.
package kpl

import (
	"bytes"
	"crypto/md5"
	"errors"
	"fmt"
	"slices"
	"strings"

	"google.golang.org/protobuf/encoding/protowire"
)

// Magic starts every aggregated record.
var magic = [4]byte{0xF3, 0x89, 0x9A, 0xC2}

const (
	magicLen    = len(magic)
	checksumLen = md5.Size
	// Overhead is what an aggregated record adds to its protobuf body: the magic bytes before
	// it and the MD5 digest after it.
	Overhead = magicLen + checksumLen
)

// Field numbers of the messages above.
const (
	fieldPartitionKeyTable    protowire.Number = 1
	fieldExplicitHashKeyTable protowire.Number = 2
	fieldRecords              protowire.Number = 3

	fieldPartitionKeyIndex    protowire.Number = 1
	fieldExplicitHashKeyIndex protowire.Number = 2
	fieldData                 protowire.Number = 3
	fieldTags                 protowire.Number = 4

	fieldTagKey   protowire.Number = 1
	fieldTagValue protowire.Number = 2
)

// Errors of Deaggregate, to be told apart with errors.Is. The KCL passes a record through as one
// plain record on ErrNotAggregated, ErrChecksum and ErrMalformed; ErrIndexOutOfRange is a
// message that parsed but whose user records name keys that are not in its tables (the KCL logs
// it, delivers the user records before the bad one and drops the rest).
var (
	// ErrNotAggregated: the record does not start with the magic bytes; it is a plain record.
	ErrNotAggregated = errors.New("not an aggregated record")
	// ErrChecksum: the record starts with the magic bytes but its MD5 digest does not match.
	ErrChecksum = errors.New("aggregated record checksum mismatch")
	// ErrMalformed: the record starts with the magic bytes but is too short to hold a message
	// and a digest, or its message is not a valid AggregatedRecord.
	ErrMalformed = errors.New("malformed aggregated record")
	// ErrIndexOutOfRange: a user record's partition key or explicit hash key index is past the
	// end of its table.
	ErrIndexOutOfRange = errors.New("aggregated record key index out of range")
)

// UserRecord is one record of an aggregate, as its producer put it.
type UserRecord struct {
	PartitionKey string
	// ExplicitHashKey is the decimal 128-bit hash key that routes the record, or empty when the
	// record has none (its partition key's MD5 routes it).
	ExplicitHashKey string
	// Data is the record's payload. Deaggregate returns slices of its input: they change when
	// the input does.
	Data []byte
	// Tags are the KPL's optional per-record tags (the KPL itself never writes any).
	Tags []Tag
}

// Tag is a user record's key-value tag.
type Tag struct {
	Key   string
	Value string
}

// IsAggregated reports whether data looks like an aggregated record: the magic bytes and room
// for a non-empty message and its digest, the KCL's test. It does not check the digest or parse
// the message; Deaggregate does.
func IsAggregated(data []byte) bool {
	return len(data) > Overhead && [4]byte(data[:magicLen]) == magic
}

// Deaggregate returns the user records of an aggregated record, in order (the index of each is
// its sub-sequence number). Their Data fields alias data; the keys and tags are copies. An
// aggregate may hold no user records. Errors wrap ErrNotAggregated, ErrChecksum, ErrMalformed or
// ErrIndexOutOfRange.
func Deaggregate(data []byte) ([]UserRecord, error) {
	return AppendDeaggregate(nil, data)
}

// AppendDeaggregate is Deaggregate appending to dst, so a caller can reuse one slice; on error it
// returns dst unchanged.
//
// Memory is bounded by the input: nothing is allocated before the whole message has been
// checked, and then at most a few allocations per aggregate, sized by what the message holds
// (every user record takes at least 6 bytes of it, every key at least 2).
func AppendDeaggregate(dst []UserRecord, data []byte) ([]UserRecord, error) {
	if len(data) < magicLen || [4]byte(data[:magicLen]) != magic {
		// Bare, without context: a plain record is the common case and costs no allocation.
		return dst, ErrNotAggregated
	}
	if len(data) <= Overhead {
		return dst, fmt.Errorf("kpl: aggregated record of %d bytes, want more than %d: %w", len(data), Overhead, ErrMalformed)
	}
	body := data[magicLen : len(data)-checksumLen]
	if sum := md5.Sum(body); !bytes.Equal(sum[:], data[len(data)-checksumLen:]) {
		return dst, fmt.Errorf("kpl: %d-byte aggregated record: %w", len(data), ErrChecksum)
	}

	c, err := scan(body)
	if err != nil {
		return dst, err
	}
	if c.maxPK.set && c.maxPK.index >= uint64(c.pks) {
		return dst, fmt.Errorf("kpl: user record %d: partition key index %d, table has %d: %w",
			c.maxPK.record, c.maxPK.index, c.pks, ErrIndexOutOfRange)
	}
	if c.maxEHK.set && c.maxEHK.index >= uint64(c.ehks) {
		return dst, fmt.Errorf("kpl: user record %d: explicit hash key index %d, table has %d: %w",
			c.maxEHK.record, c.maxEHK.index, c.ehks, ErrIndexOutOfRange)
	}

	// The message is valid: build the result with one allocation for all key and tag bytes, one
	// for the key tables and one for the tags, so the cost per user record stays flat.
	var sb strings.Builder
	sb.Grow(c.strBytes)
	intern := func(b []byte) string {
		if len(b) == 0 {
			return ""
		}
		start := sb.Len()
		sb.Write(b)
		// The builder only ever appends, so earlier substrings stay valid.
		return sb.String()[start:]
	}
	// Tables first: a user record may come before the keys it names.
	tables := make([]string, c.pks+c.ehks)
	pkTable, ehkTable := tables[:c.pks:c.pks], tables[c.pks:]
	pi, ei := 0, 0
	for b := body; len(b) > 0; {
		num, typ, n := protowire.ConsumeTag(b)
		b = b[n:]
		if typ == protowire.BytesType && (num == fieldPartitionKeyTable || num == fieldExplicitHashKeyTable) {
			v, m := protowire.ConsumeBytes(b)
			if num == fieldPartitionKeyTable {
				pkTable[pi] = intern(v)
				pi++
			} else {
				ehkTable[ei] = intern(v)
				ei++
			}
			b = b[m:]
			continue
		}
		b = b[protowire.ConsumeFieldValue(num, typ, b):]
	}

	var tags []Tag
	if c.tags > 0 {
		tags = make([]Tag, c.tags)
	}
	dst = slices.Grow(dst, c.records)
	for b := body; len(b) > 0; {
		num, typ, n := protowire.ConsumeTag(b)
		b = b[n:]
		if typ == protowire.BytesType && num == fieldRecords {
			v, m := protowire.ConsumeBytes(b)
			b = b[m:]
			var r record
			_ = r.parse(v, tags, intern) // scan checked it
			u := UserRecord{PartitionKey: pkTable[r.pk], Data: r.data}
			if r.hasEHK {
				u.ExplicitHashKey = ehkTable[r.ehk]
			}
			if r.tags > 0 {
				u.Tags = tags[:r.tags:r.tags]
				tags = tags[r.tags:]
			}
			dst = append(dst, u)
			continue
		}
		b = b[protowire.ConsumeFieldValue(num, typ, b):]
	}
	return dst, nil
}

// counts is what scan learns of a valid message before anything is allocated for it.
type counts struct {
	pks, ehks, records, tags int
	strBytes                 int // bytes of all keys, tag keys and tag values
	maxPK, maxEHK            maxIndex
}

// maxIndex is the largest key index seen and the first user record that holds it.
type maxIndex struct {
	set    bool
	index  uint64
	record int
}

func (m *maxIndex) see(index uint64, record int) {
	if !m.set || index > m.index {
		*m = maxIndex{set: true, index: index, record: record}
	}
}

// scan checks that body is a valid AggregatedRecord and counts what it holds.
func scan(body []byte) (counts, error) {
	var c counts
	for b := body; len(b) > 0; {
		off := len(body) - len(b)
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return c, fmt.Errorf("kpl: message byte %d: field tag: %w: %w", off, protowire.ParseError(n), ErrMalformed)
		}
		b = b[n:]
		if typ != protowire.BytesType || num > fieldRecords {
			m := protowire.ConsumeFieldValue(num, typ, b)
			if m < 0 {
				return c, fmt.Errorf("kpl: message byte %d: unknown field %d: %w: %w", off, num, protowire.ParseError(m), ErrMalformed)
			}
			b = b[m:]
			continue
		}
		v, m := protowire.ConsumeBytes(b)
		if m < 0 {
			return c, fmt.Errorf("kpl: message byte %d: field %d: %w: %w", off, num, protowire.ParseError(m), ErrMalformed)
		}
		b = b[m:]
		switch num {
		case fieldPartitionKeyTable:
			c.pks++
			c.strBytes += len(v)
		case fieldExplicitHashKeyTable:
			c.ehks++
			c.strBytes += len(v)
		case fieldRecords:
			var r record
			if err := r.parse(v, nil, nil); err != nil {
				return c, fmt.Errorf("kpl: user record %d: %w", c.records, err)
			}
			c.maxPK.see(r.pk, c.records)
			if r.hasEHK {
				c.maxEHK.see(r.ehk, c.records)
			}
			c.tags += r.tags
			c.strBytes += r.tagBytes
			c.records++
		}
	}
	return c, nil
}

// record is one parsed Record message.
type record struct {
	pk, ehk  uint64
	hasEHK   bool
	data     []byte
	tags     int
	tagBytes int
}

// parse reads a Record message. Given room for its tags (sized by scan), it also stores them,
// their strings made by intern.
func (r *record) parse(b []byte, tags []Tag, intern func([]byte) string) error {
	var hasPK, hasData bool
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return fmt.Errorf("field tag: %w: %w", protowire.ParseError(n), ErrMalformed)
		}
		b = b[n:]
		switch {
		case num == fieldPartitionKeyIndex && typ == protowire.VarintType:
			v, m := protowire.ConsumeVarint(b)
			if m < 0 {
				return fmt.Errorf("partition key index: %w: %w", protowire.ParseError(m), ErrMalformed)
			}
			r.pk, hasPK = v, true
			b = b[m:]
		case num == fieldExplicitHashKeyIndex && typ == protowire.VarintType:
			v, m := protowire.ConsumeVarint(b)
			if m < 0 {
				return fmt.Errorf("explicit hash key index: %w: %w", protowire.ParseError(m), ErrMalformed)
			}
			r.ehk, r.hasEHK = v, true
			b = b[m:]
		case num == fieldData && typ == protowire.BytesType:
			v, m := protowire.ConsumeBytes(b)
			if m < 0 {
				return fmt.Errorf("data: %w: %w", protowire.ParseError(m), ErrMalformed)
			}
			// A full slice expression, so a caller appending to one record's data cannot
			// overwrite the next.
			r.data, hasData = v[:len(v):len(v)], true
			b = b[m:]
		case num == fieldTags && typ == protowire.BytesType:
			v, m := protowire.ConsumeBytes(b)
			if m < 0 {
				return fmt.Errorf("tag %d: %w: %w", r.tags, protowire.ParseError(m), ErrMalformed)
			}
			key, value, err := parseTag(v)
			if err != nil {
				return fmt.Errorf("tag %d: %w", r.tags, err)
			}
			if tags != nil {
				tags[r.tags] = Tag{Key: intern(key), Value: intern(value)}
			}
			r.tags++
			r.tagBytes += len(key) + len(value)
			b = b[m:]
		default:
			m := protowire.ConsumeFieldValue(num, typ, b)
			if m < 0 {
				return fmt.Errorf("unknown field %d: %w: %w", num, protowire.ParseError(m), ErrMalformed)
			}
			b = b[m:]
		}
	}
	if !hasPK {
		return fmt.Errorf("required partition_key_index missing: %w", ErrMalformed)
	}
	if !hasData {
		return fmt.Errorf("required data missing: %w", ErrMalformed)
	}
	return nil
}

// parseTag reads a Tag message.
func parseTag(b []byte) (key, value []byte, err error) {
	var hasKey bool
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil, nil, fmt.Errorf("field tag: %w: %w", protowire.ParseError(n), ErrMalformed)
		}
		b = b[n:]
		if typ == protowire.BytesType && (num == fieldTagKey || num == fieldTagValue) {
			v, m := protowire.ConsumeBytes(b)
			if m < 0 {
				return nil, nil, fmt.Errorf("field %d: %w: %w", num, protowire.ParseError(m), ErrMalformed)
			}
			if num == fieldTagKey {
				key, hasKey = v, true
			} else {
				value = v
			}
			b = b[m:]
			continue
		}
		m := protowire.ConsumeFieldValue(num, typ, b)
		if m < 0 {
			return nil, nil, fmt.Errorf("unknown field %d: %w: %w", num, protowire.ParseError(m), ErrMalformed)
		}
		b = b[m:]
	}
	if !hasKey {
		return nil, nil, fmt.Errorf("required key missing: %w", ErrMalformed)
	}
	return key, value, nil
}
