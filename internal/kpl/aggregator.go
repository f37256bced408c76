package kpl

import (
	"crypto/md5"
	"errors"
	"fmt"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
)

// Errors of Aggregator.Add, to be told apart with errors.Is.
var (
	// ErrFull: the record does not fit in what the aggregator holds; Flush, then add it again.
	ErrFull = errors.New("aggregated record full")
	// ErrRecordTooLarge: the record does not fit in an aggregated record of the limit even
	// alone; send it un-aggregated or fail it.
	ErrRecordTooLarge = errors.New("user record too large to aggregate")
	// ErrInvalidRecord: the record's keys are not valid for Kinesis (a partition key of 1 to
	// 256 Unicode characters in UTF-8, an explicit hash key in [0, 2^128-1]) or a tag is not
	// UTF-8; a consumer could not read them back as written.
	ErrInvalidRecord = errors.New("invalid user record")
)

// maxPartitionKeyChars is Kinesis' limit on a partition key.
const maxPartitionKeyChars = 256

// aggregatePartitionKey is the partition key of an aggregate of two or more user records, as the
// KPL sets it: the explicit hash key routes the aggregate, so one byte is enough.
const aggregatePartitionKey = "a"

// Aggregate is one Kinesis record made by an Aggregator.
type Aggregate struct {
	// PartitionKey and ExplicitHashKey are what to put the record with. As the KPL does, an
	// aggregate of two or more user records has the partition key "a" and, as explicit hash
	// key, the hash key of its first user record (its explicit hash key, else its partition
	// key's MD5) in decimal, so it goes to the shard the first user record would go to. A lone
	// user record keeps its own keys (ExplicitHashKey empty when it had none), which routes it
	// the same way.
	PartitionKey    string
	ExplicitHashKey string
	// Data is the aggregated record (magic, message, MD5); for a lone user record, as the KPL
	// does, just that record's data, which every consumer reads as it is. It never aliases
	// the data given to Add.
	Data []byte
	// Records is the number of user records in it.
	Records int
}

// Aggregator packs user records into aggregated records of at most a given size, with the
// partition-key and explicit-hash-key tables deduplicated. It counts the exact encoded size as
// records are added. The zero value is not usable; use NewAggregator. Not safe for concurrent use.
type Aggregator struct {
	maxSize int
	pkIndex map[string]uint64
	ehIndex map[string]uint64
	// The message's three repeated fields are kept apart and joined in field order by Flush:
	// the canonical order, which the KPL writes (and some hand-written readers expect).
	pkBuf, ehBuf, recBuf []byte
	records              int
	// The first user record's keys, for the aggregate's keys, and where its data is in recBuf,
	// for a lone record.
	firstPK, firstEHK       string
	firstData, firstDataEnd int
}

// NewAggregator returns an Aggregator whose aggregated records are at most maxSize bytes of data
// (magic, message and MD5; Kinesis also counts the partition key, "a", against its record
// limit). maxSize must leave room for a record: more than Overhead plus 6 bytes.
func NewAggregator(maxSize int) (*Aggregator, error) {
	if maxSize <= Overhead+6 {
		return nil, fmt.Errorf("kpl: aggregate size limit %d too small, want more than %d", maxSize, Overhead+6)
	}
	return &Aggregator{
		maxSize: maxSize,
		pkIndex: make(map[string]uint64),
		ehIndex: make(map[string]uint64),
	}, nil
}

// MaxSize returns the size limit the Aggregator was made with.
func (a *Aggregator) MaxSize() int { return a.maxSize }

// Len returns the number of user records held.
func (a *Aggregator) Len() int { return a.records }

// Size returns the exact size of the aggregated record the held user records make: Overhead
// plus the message (Overhead alone when empty). A lone user record is flushed as its bare data,
// which is smaller.
func (a *Aggregator) Size() int {
	return Overhead + len(a.pkBuf) + len(a.ehBuf) + len(a.recBuf)
}

// AddedSize returns how many bytes adding r would add to Size: its record in the message, plus
// its partition key and explicit hash key if the tables do not hold them yet. r fits when
// Size()+AddedSize(r) <= MaxSize().
func (a *Aggregator) AddedSize(r UserRecord) int {
	n, _, _ := a.addedSize(r)
	return n
}

func (a *Aggregator) addedSize(r UserRecord) (n int, pkIdx, ehIdx uint64) {
	pkIdx, ok := a.pkIndex[r.PartitionKey]
	if !ok {
		pkIdx = uint64(len(a.pkIndex))
		n += protowire.SizeTag(fieldPartitionKeyTable) + protowire.SizeBytes(len(r.PartitionKey))
	}
	if r.ExplicitHashKey != "" {
		if ehIdx, ok = a.ehIndex[r.ExplicitHashKey]; !ok {
			ehIdx = uint64(len(a.ehIndex))
			n += protowire.SizeTag(fieldExplicitHashKeyTable) + protowire.SizeBytes(len(r.ExplicitHashKey))
		}
	}
	n += protowire.SizeTag(fieldRecords) + protowire.SizeBytes(recordSize(r, pkIdx, ehIdx))
	return n, pkIdx, ehIdx
}

// aloneSize is the size of an aggregated record holding r only.
func aloneSize(r UserRecord) int {
	n := Overhead + protowire.SizeTag(fieldPartitionKeyTable) + protowire.SizeBytes(len(r.PartitionKey))
	if r.ExplicitHashKey != "" {
		n += protowire.SizeTag(fieldExplicitHashKeyTable) + protowire.SizeBytes(len(r.ExplicitHashKey))
	}
	return n + protowire.SizeTag(fieldRecords) + protowire.SizeBytes(recordSize(r, 0, 0))
}

// recordSize is the size of r's Record message.
func recordSize(r UserRecord, pkIdx, ehIdx uint64) int {
	n := protowire.SizeTag(fieldPartitionKeyIndex) + protowire.SizeVarint(pkIdx)
	if r.ExplicitHashKey != "" {
		n += protowire.SizeTag(fieldExplicitHashKeyIndex) + protowire.SizeVarint(ehIdx)
	}
	n += protowire.SizeTag(fieldData) + protowire.SizeBytes(len(r.Data))
	for _, t := range r.Tags {
		n += protowire.SizeTag(fieldTags) + protowire.SizeBytes(tagSize(t))
	}
	return n
}

// tagSize is the size of t's Tag message; an empty value is left out.
func tagSize(t Tag) int {
	n := protowire.SizeTag(fieldTagKey) + protowire.SizeBytes(len(t.Key))
	if t.Value != "" {
		n += protowire.SizeTag(fieldTagValue) + protowire.SizeBytes(len(t.Value))
	}
	return n
}

// appendRecord appends r's records field and returns where r's data starts in it.
func appendRecord(b []byte, r UserRecord, pkIdx, ehIdx uint64) ([]byte, int) {
	b = protowire.AppendTag(b, fieldRecords, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(recordSize(r, pkIdx, ehIdx)))
	b = protowire.AppendTag(b, fieldPartitionKeyIndex, protowire.VarintType)
	b = protowire.AppendVarint(b, pkIdx)
	if r.ExplicitHashKey != "" {
		b = protowire.AppendTag(b, fieldExplicitHashKeyIndex, protowire.VarintType)
		b = protowire.AppendVarint(b, ehIdx)
	}
	b = protowire.AppendTag(b, fieldData, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(len(r.Data)))
	start := len(b)
	b = append(b, r.Data...)
	for _, t := range r.Tags {
		b = protowire.AppendTag(b, fieldTags, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(tagSize(t)))
		b = protowire.AppendTag(b, fieldTagKey, protowire.BytesType)
		b = protowire.AppendString(b, t.Key)
		if t.Value != "" {
			b = protowire.AppendTag(b, fieldTagValue, protowire.BytesType)
			b = protowire.AppendString(b, t.Value)
		}
	}
	return b, start
}

// validate checks what a consumer needs to read r back as written.
func validate(r UserRecord) error {
	switch {
	case r.PartitionKey == "":
		return fmt.Errorf("kpl: partition key is empty: %w", ErrInvalidRecord)
	case !utf8.ValidString(r.PartitionKey):
		return fmt.Errorf("kpl: partition key %.64q is not UTF-8: %w", r.PartitionKey, ErrInvalidRecord)
	case utf8.RuneCountInString(r.PartitionKey) > maxPartitionKeyChars:
		return fmt.Errorf("kpl: partition key %.64q... has %d characters, over %d: %w",
			r.PartitionKey, utf8.RuneCountInString(r.PartitionKey), maxPartitionKeyChars, ErrInvalidRecord)
	}
	if r.ExplicitHashKey != "" {
		if _, err := ParseHashKey(r.ExplicitHashKey); err != nil {
			return fmt.Errorf("kpl: explicit hash key %.64q: %w: %w", r.ExplicitHashKey, err, ErrInvalidRecord)
		}
	}
	for i, t := range r.Tags {
		if !utf8.ValidString(t.Key) || !utf8.ValidString(t.Value) {
			return fmt.Errorf("kpl: tag %d is not UTF-8: %w", i, ErrInvalidRecord)
		}
	}
	return nil
}

// Add appends r, copying its data. On error it holds what it held before: ErrInvalidRecord,
// ErrRecordTooLarge (r alone makes an aggregated record over the limit) or ErrFull (Flush, then
// add r again).
func (a *Aggregator) Add(r UserRecord) error {
	if err := validate(r); err != nil {
		return err
	}
	if n := aloneSize(r); n > a.maxSize {
		return fmt.Errorf("kpl: user record with partition key %.64q and %d bytes of data makes a %d-byte aggregated record alone, over the limit of %d: %w",
			r.PartitionKey, len(r.Data), n, a.maxSize, ErrRecordTooLarge)
	}
	added, pkIdx, ehIdx := a.addedSize(r)
	if size := a.Size(); size+added > a.maxSize {
		return fmt.Errorf("kpl: %d-byte aggregated record of %d user records cannot take %d more bytes (limit %d): %w",
			size, a.records, added, a.maxSize, ErrFull)
	}
	if int(pkIdx) == len(a.pkIndex) {
		a.pkIndex[r.PartitionKey] = pkIdx
		a.pkBuf = protowire.AppendTag(a.pkBuf, fieldPartitionKeyTable, protowire.BytesType)
		a.pkBuf = protowire.AppendString(a.pkBuf, r.PartitionKey)
	}
	if r.ExplicitHashKey != "" && int(ehIdx) == len(a.ehIndex) {
		a.ehIndex[r.ExplicitHashKey] = ehIdx
		a.ehBuf = protowire.AppendTag(a.ehBuf, fieldExplicitHashKeyTable, protowire.BytesType)
		a.ehBuf = protowire.AppendString(a.ehBuf, r.ExplicitHashKey)
	}
	var start int
	a.recBuf, start = appendRecord(a.recBuf, r, pkIdx, ehIdx)
	if a.records == 0 {
		a.firstPK, a.firstEHK = r.PartitionKey, r.ExplicitHashKey
		a.firstData, a.firstDataEnd = start, start+len(r.Data)
	}
	a.records++
	return nil
}

// Flush returns the Kinesis record made of the held user records and empties the Aggregator;
// false when it held none.
func (a *Aggregator) Flush() (Aggregate, bool) {
	if a.records == 0 {
		return Aggregate{}, false
	}
	defer a.Reset()
	if a.records == 1 {
		data := make([]byte, a.firstDataEnd-a.firstData)
		copy(data, a.recBuf[a.firstData:a.firstDataEnd])
		return Aggregate{PartitionKey: a.firstPK, ExplicitHashKey: a.firstEHK, Data: data, Records: 1}, true
	}
	out := make([]byte, 0, a.Size())
	out = append(out, magic[:]...)
	out = append(out, a.pkBuf...)
	out = append(out, a.ehBuf...)
	out = append(out, a.recBuf...)
	sum := md5.Sum(out[magicLen:])
	out = append(out, sum[:]...)

	hk := PartitionKeyHash(a.firstPK)
	if a.firstEHK != "" {
		hk, _ = ParseHashKey(a.firstEHK) // Add validated it
	}
	return Aggregate{
		PartitionKey:    aggregatePartitionKey,
		ExplicitHashKey: hk.String(),
		Data:            out,
		Records:         a.records,
	}, true
}

// Reset drops the held user records, keeping the buffers for the next aggregate.
func (a *Aggregator) Reset() {
	clear(a.pkIndex)
	clear(a.ehIndex)
	a.pkBuf, a.ehBuf, a.recBuf = a.pkBuf[:0], a.ehBuf[:0], a.recBuf[:0]
	a.records = 0
	a.firstPK, a.firstEHK = "", ""
	a.firstData, a.firstDataEnd = 0, 0
}
