package kpl

import (
	"bytes"
	"crypto/md5"
	"errors"
	"math/big"
	"reflect"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
)

func newAggregator(t testing.TB, maxSize int) *Aggregator {
	t.Helper()
	a, err := NewAggregator(maxSize)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// tableSizes counts the partition-key and explicit-hash-key table entries of an aggregate.
func tableSizes(t *testing.T, data []byte) (pks, ehks int) {
	t.Helper()
	c, err := scan(data[magicLen : len(data)-checksumLen])
	if err != nil {
		t.Fatal(err)
	}
	return c.pks, c.ehks
}

func TestAggregatorSizeIsExact(t *testing.T) {
	a := newAggregator(t, 1<<20)
	recs := []UserRecord{
		{PartitionKey: "a", Data: []byte("x")},
		{PartitionKey: "a", Data: nil},                                         // known key
		{PartitionKey: "b", ExplicitHashKey: "12345", Data: make([]byte, 200)}, // varint lengths of 2 bytes
		{PartitionKey: "c", ExplicitHashKey: "12345", Data: []byte("y")},       // known hash key
		{PartitionKey: strings.Repeat("k", 256), Data: make([]byte, 20000)},    // 3-byte lengths
		{PartitionKey: "t", Data: []byte("z"), Tags: []Tag{{Key: "k", Value: "v"}, {Key: "only-key"}}},
	}
	for i := range 200 { // indexes past 127 take two bytes
		recs = append(recs, UserRecord{PartitionKey: strings.Repeat("p", i+1), Data: []byte{byte(i)}})
	}
	for i, r := range recs {
		before, added := a.Size(), a.AddedSize(r)
		if err := a.Add(r); err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		if a.Size() != before+added {
			t.Fatalf("record %d: Size %d after Add, want %d + AddedSize %d", i, a.Size(), before, added)
		}
	}
	size := a.Size()
	out, ok := a.Flush()
	if !ok || out.Records != len(recs) {
		t.Fatalf("Flush = %d records, %v", out.Records, ok)
	}
	if len(out.Data) != size {
		t.Errorf("len(Data) = %d, Size said %d", len(out.Data), size)
	}
	if pks, ehks := tableSizes(t, out.Data); pks != 205 || ehks != 1 {
		t.Errorf("tables hold %d partition keys and %d hash keys, want 205 and 1 (deduplicated)", pks, ehks)
	}
	got, err := Deaggregate(out.Data)
	if err != nil {
		t.Fatal(err)
	}
	for i := range recs {
		if recs[i].Data == nil {
			recs[i].Data = []byte{}
		}
	}
	if !reflect.DeepEqual(got, recs) {
		t.Errorf("round trip differs")
	}
	if a.Len() != 0 || a.Size() != Overhead {
		t.Errorf("after Flush: Len %d, Size %d, want 0 and %d", a.Len(), a.Size(), Overhead)
	}
}

func TestAggregateKeys(t *testing.T) {
	md5Decimal := func(s string) string {
		sum := md5.Sum([]byte(s))
		return new(big.Int).SetBytes(sum[:]).String()
	}
	for _, tc := range []struct {
		name            string
		recs            []UserRecord
		wantPK, wantEHK string
	}{
		{
			name:   "aggregate: partition key a, first record's key hash",
			recs:   []UserRecord{{PartitionKey: "first"}, {PartitionKey: "second", ExplicitHashKey: "5"}},
			wantPK: "a", wantEHK: md5Decimal("first"),
		},
		{
			name:   "aggregate: first record's explicit hash key, in canonical decimal",
			recs:   []UserRecord{{PartitionKey: "first", ExplicitHashKey: "0042"}, {PartitionKey: "second"}},
			wantPK: "a", wantEHK: "42",
		},
		{
			name:   "lone record keeps its keys",
			recs:   []UserRecord{{PartitionKey: "only", ExplicitHashKey: "7", Data: []byte("raw")}},
			wantPK: "only", wantEHK: "7",
		},
		{
			name:   "lone record without explicit hash key",
			recs:   []UserRecord{{PartitionKey: "only", Data: []byte("raw")}},
			wantPK: "only", wantEHK: "",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := newAggregator(t, 1<<20)
			for _, r := range tc.recs {
				if err := a.Add(r); err != nil {
					t.Fatal(err)
				}
			}
			out, _ := a.Flush()
			if out.PartitionKey != tc.wantPK || out.ExplicitHashKey != tc.wantEHK {
				t.Errorf("keys %q %q, want %q %q", out.PartitionKey, out.ExplicitHashKey, tc.wantPK, tc.wantEHK)
			}
			if len(tc.recs) == 1 && string(out.Data) != string(tc.recs[0].Data) {
				t.Errorf("lone record's Data = %q, want its bare data %q", out.Data, tc.recs[0].Data)
			}
		})
	}
}

func TestAggregatorLimits(t *testing.T) {
	rec := UserRecord{PartitionKey: "k", Data: make([]byte, 10)}
	one := aloneSize(rec)
	if _, err := NewAggregator(Overhead + 6); err == nil {
		t.Error("NewAggregator accepted a limit with no room for a record")
	}

	// Exactly full: the limit is inclusive.
	second := a2(t, one, rec)
	if err := second.Add(rec); err == nil || !errors.Is(err, ErrFull) {
		t.Fatalf("third record: err = %v, want ErrFull", err)
	}
	if second.Len() != 2 || second.Size() != second.MaxSize() {
		t.Errorf("after ErrFull: Len %d Size %d, want 2 and %d", second.Len(), second.Size(), second.MaxSize())
	}
	out, _ := second.Flush()
	if len(out.Data) != second.MaxSize() {
		t.Errorf("len(Data) = %d, want the limit %d", len(out.Data), second.MaxSize())
	}
	if err := second.Add(rec); err != nil {
		t.Errorf("Add after Flush: %v", err)
	}

	// Too large alone, in an empty or a non-empty aggregator.
	big := UserRecord{PartitionKey: "k", Data: make([]byte, 1000)}
	for _, held := range []int{0, 1} {
		a := newAggregator(t, 500)
		for range held {
			if err := a.Add(rec); err != nil {
				t.Fatal(err)
			}
		}
		err := a.Add(big)
		if !errors.Is(err, ErrRecordTooLarge) || errors.Is(err, ErrFull) {
			t.Errorf("holding %d: err = %v, want ErrRecordTooLarge only", held, err)
		}
		if a.Len() != held {
			t.Errorf("holding %d: Len %d after a refused Add", held, a.Len())
		}
	}
	if _, ok := newAggregator(t, 500).Flush(); ok {
		t.Error("Flush of an empty Aggregator reported a record")
	}
}

// a2 returns an Aggregator holding two copies of r whose limit is exactly their size.
func a2(t *testing.T, one int, r UserRecord) *Aggregator {
	t.Helper()
	probe := newAggregator(t, 1<<20)
	if err := probe.Add(r); err != nil {
		t.Fatal(err)
	}
	if probe.Size() != one {
		t.Fatalf("Size %d, aloneSize %d", probe.Size(), one)
	}
	limit := one + probe.AddedSize(r)
	a := newAggregator(t, limit)
	for range 2 {
		if err := a.Add(r); err != nil {
			t.Fatal(err)
		}
	}
	return a
}

func TestAggregatorInvalidRecords(t *testing.T) {
	for _, tc := range []struct {
		name string
		r    UserRecord
	}{
		{"empty partition key", UserRecord{}},
		{"257-character partition key", UserRecord{PartitionKey: strings.Repeat("é", 257)}},
		{"partition key not UTF-8", UserRecord{PartitionKey: "\xff"}},
		{"hash key not decimal", UserRecord{PartitionKey: "k", ExplicitHashKey: "0x10"}},
		{"negative hash key", UserRecord{PartitionKey: "k", ExplicitHashKey: "-1"}},
		{"hash key 2^128", UserRecord{PartitionKey: "k", ExplicitHashKey: "340282366920938463463374607431768211456"}},
		{"tag not UTF-8", UserRecord{PartitionKey: "k", Tags: []Tag{{Key: "k", Value: "\xc3"}}}},
	} {
		a := newAggregator(t, 1<<20)
		if err := a.Add(tc.r); !errors.Is(err, ErrInvalidRecord) {
			t.Errorf("%s: err = %v, want ErrInvalidRecord", tc.name, err)
		}
		if a.Len() != 0 || a.Size() != Overhead {
			t.Errorf("%s: the refused record was kept", tc.name)
		}
	}
	a := newAggregator(t, 1<<20)
	for _, r := range []UserRecord{
		{PartitionKey: strings.Repeat("é", 256)},
		{PartitionKey: "k", ExplicitHashKey: "340282366920938463463374607431768211455"},
		{PartitionKey: "k", ExplicitHashKey: "0"},
	} {
		if err := a.Add(r); err != nil {
			t.Errorf("%.20q: %v", r.PartitionKey, err)
		}
	}
}

func TestAggregatorOutputDoesNotAlias(t *testing.T) {
	a := newAggregator(t, 1<<20)
	data := []byte("mutable")
	for range 2 {
		if err := a.Add(UserRecord{PartitionKey: "k", Data: data}); err != nil {
			t.Fatal(err)
		}
	}
	first, _ := a.Flush()
	kept := bytes.Clone(first.Data)
	data[0] = 'M'
	for range 3 {
		if err := a.Add(UserRecord{PartitionKey: "other", Data: []byte("overwrite")}); err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(first.Data, kept) {
		t.Error("a flushed record changed after its user data changed or the Aggregator was reused")
	}
	lone := newAggregator(t, 1<<20)
	if err := lone.Add(UserRecord{PartitionKey: "k", Data: data}); err != nil {
		t.Fatal(err)
	}
	out, _ := lone.Flush()
	data[0] = 'x'
	if string(out.Data) != "Mutable" {
		t.Errorf("lone record's Data = %q, want a copy", out.Data)
	}
}

func TestHashKey(t *testing.T) {
	max := new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 128), big.NewInt(1))
	for _, s := range []string{"0", "1", "9", "10", "18446744073709551615", "18446744073709551616",
		"170141183460469231731687303715884105728", max.String()} {
		h, err := ParseHashKey(s)
		if err != nil {
			t.Errorf("ParseHashKey(%s): %v", s, err)
			continue
		}
		if h.String() != s {
			t.Errorf("ParseHashKey(%s).String() = %s", s, h.String())
		}
	}
	for _, s := range []string{"", "-1", "1.0", " 1", "340282366920938463463374607431768211456", strings.Repeat("9", 40)} {
		if _, err := ParseHashKey(s); err == nil {
			t.Errorf("ParseHashKey(%q) accepted", s)
		}
	}
	if h, _ := ParseHashKey("007"); h.String() != "7" {
		t.Errorf("leading zeros: %s", h)
	}
	sum := md5.Sum([]byte("partition"))
	want := new(big.Int).SetBytes(sum[:]).String()
	if got := PartitionKeyHash("partition").String(); got != want {
		t.Errorf("PartitionKeyHash = %s, want %s", got, want)
	}
	if h, _ := (UserRecord{PartitionKey: "partition"}).HashKey(); h.String() != want {
		t.Errorf("HashKey without explicit key = %s, want %s", h, want)
	}
	if h, _ := (UserRecord{PartitionKey: "partition", ExplicitHashKey: "12"}).HashKey(); h.String() != "12" {
		t.Errorf("HashKey with explicit key = %s", h)
	}
	lo, _ := ParseHashKey("18446744073709551615")
	hi, _ := ParseHashKey("18446744073709551616")
	if !lo.Less(hi) || hi.Less(lo) || lo.Less(lo) {
		t.Error("Less is wrong across the 64-bit boundary")
	}
}

// TestAggregatorWritesCanonicalOrder checks the message lists its fields in field-number order,
// as the KPL writes it.
func TestAggregatorWritesCanonicalOrder(t *testing.T) {
	a := newAggregator(t, 1<<20)
	for _, r := range []UserRecord{{PartitionKey: "a"}, {PartitionKey: "b", ExplicitHashKey: "1"}, {PartitionKey: "c", ExplicitHashKey: "2"}} {
		if err := a.Add(r); err != nil {
			t.Fatal(err)
		}
	}
	out, _ := a.Flush()
	body := out.Data[magicLen : len(out.Data)-checksumLen]
	var order []protowire.Number
	for len(body) > 0 {
		num, typ, n := protowire.ConsumeTag(body)
		body = body[n:]
		body = body[protowire.ConsumeFieldValue(num, typ, body):]
		order = append(order, num)
	}
	if want := []protowire.Number{1, 1, 1, 2, 2, 3, 3, 3}; !reflect.DeepEqual(order, want) {
		t.Errorf("fields %v, want %v", order, want)
	}
}
