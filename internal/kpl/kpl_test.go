package kpl

import (
	"bytes"
	"crypto/md5"
	"encoding/base64"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
)

// frame wraps a protobuf body as an aggregated record: magic, body, MD5.
func frame(body []byte) []byte {
	out := append(append([]byte(nil), magic[:]...), body...)
	sum := md5.Sum(body)
	return append(out, sum[:]...)
}

// Builders of hand-written messages, for what Aggregator never writes.
func fBytes(b []byte, num protowire.Number, v []byte) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendBytes(b, v)
}

func fVarint(b []byte, num protowire.Number, v uint64) []byte {
	b = protowire.AppendTag(b, num, protowire.VarintType)
	return protowire.AppendVarint(b, v)
}

func pkEntry(b []byte, key string) []byte  { return fBytes(b, fieldPartitionKeyTable, []byte(key)) }
func ehkEntry(b []byte, key string) []byte { return fBytes(b, fieldExplicitHashKeyTable, []byte(key)) }
func rec(b []byte, fields []byte) []byte   { return fBytes(b, fieldRecords, fields) }
func recFields(pk uint64, data string) []byte {
	return fBytes(fVarint(nil, fieldPartitionKeyIndex, pk), fieldData, []byte(data))
}

// mustAggregate packs recs into one aggregated record (two or more records).
func mustAggregate(t testing.TB, recs ...UserRecord) []byte {
	t.Helper()
	a, err := NewAggregator(1 << 20)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		if err := a.Add(r); err != nil {
			t.Fatal(err)
		}
	}
	out, ok := a.Flush()
	if !ok || out.Records < 2 {
		t.Fatalf("Flush: %d records, want an aggregate of at least 2", out.Records)
	}
	return out.Data
}

func TestIsAggregated(t *testing.T) {
	valid := mustAggregate(t, UserRecord{PartitionKey: "a", Data: []byte("x")}, UserRecord{PartitionKey: "b"})
	for _, tc := range []struct {
		name string
		data []byte
		want bool
	}{
		{"nil", nil, false},
		{"plain", []byte(`{"json":true}`), false},
		{"magic only", magic[:], false},
		{"magic and digest, empty message (the KCL passes it through)", frame(nil), false},
		{"wrong magic", append([]byte{0xF3, 0x89, 0x9A, 0xC3}, valid[4:]...), false},
		{"aggregate", valid, true},
		{"bad checksum still looks aggregated", append(valid[:len(valid)-1:len(valid)-1], 0), true},
	} {
		if got := IsAggregated(tc.data); got != tc.want {
			t.Errorf("%s: IsAggregated = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestDeaggregateErrors(t *testing.T) {
	valid := mustAggregate(t, UserRecord{PartitionKey: "a", Data: []byte("x")}, UserRecord{PartitionKey: "b"})
	flip := func(b []byte, i int) []byte {
		b = bytes.Clone(b)
		b[i] ^= 0x01
		return b
	}
	okRec := rec(nil, recFields(0, "d"))
	for _, tc := range []struct {
		name string
		data []byte
		want error
	}{
		{"nil", nil, ErrNotAggregated},
		{"short plain", []byte("abc"), ErrNotAggregated},
		{"plain", []byte("hello, world, a plain Kinesis record"), ErrNotAggregated},
		{"three magic bytes", magic[:3], ErrNotAggregated},
		{"wrong fourth magic byte", flip(valid, 3), ErrNotAggregated},

		{"magic only", magic[:], ErrMalformed},
		{"magic and 16 bytes", frame(nil), ErrMalformed},

		{"body byte flipped", flip(valid, 6), ErrChecksum},
		{"digest byte flipped", flip(valid, len(valid)-1), ErrChecksum},
		{"digest truncated", valid[:len(valid)-1], ErrChecksum},

		{"truncated tag varint", frame([]byte{0x80}), ErrMalformed},
		{"overlong varint", frame(bytes.Repeat([]byte{0xFF}, 11)), ErrMalformed},
		{"field number 0", frame([]byte{0x02, 0x00}), ErrMalformed},
		{"claimed length past the end", frame(append(pkEntry(nil, "a"), 0x1A, 0xFF, 0xFF, 0xFF, 0x7F, 0x08)), ErrMalformed},
		{"end group at top level", frame([]byte{0x0C}), ErrMalformed},
		{"unterminated group", frame([]byte{0x7B, 0x08, 0x01}), ErrMalformed},
		{"reserved wire type", frame([]byte{0x0E}), ErrMalformed},
		{"record without partition key index", frame(pkEntry(rec(nil, fBytes(nil, fieldData, nil)), "a")), ErrMalformed},
		{"record without data", frame(pkEntry(rec(nil, fVarint(nil, fieldPartitionKeyIndex, 0)), "a")), ErrMalformed},
		{"record with truncated index", frame(rec(nil, []byte{0x08, 0x80})), ErrMalformed},
		{"tag without key", frame(pkEntry(rec(nil, fBytes(recFields(0, "d"), fieldTags, fBytes(nil, fieldTagValue, []byte("v")))), "a")), ErrMalformed},
		{"tag with bad field", frame(pkEntry(rec(nil, fBytes(recFields(0, "d"), fieldTags, []byte{0x0A, 0x05})), "a")), ErrMalformed},

		{"no partition key table", frame(okRec), ErrIndexOutOfRange},
		{"partition key index = table size", frame(pkEntry(rec(okRec, recFields(1, "e")), "a")), ErrIndexOutOfRange},
		{"huge partition key index", frame(pkEntry(rec(nil, recFields(1<<63, "e")), "a")), ErrIndexOutOfRange},
		{"explicit hash key index, no table", frame(pkEntry(rec(nil, fVarint(recFields(0, "d"), fieldExplicitHashKeyIndex, 0)), "a")), ErrIndexOutOfRange},
		{"explicit hash key index = table size", frame(ehkEntry(pkEntry(rec(nil, fVarint(recFields(0, "d"), fieldExplicitHashKeyIndex, 1)), "a"), "5")), ErrIndexOutOfRange},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dst := []UserRecord{{PartitionKey: "kept"}}
			got, err := AppendDeaggregate(dst, tc.data)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			for _, other := range []error{ErrNotAggregated, ErrChecksum, ErrMalformed, ErrIndexOutOfRange} {
				if other != tc.want && errors.Is(err, other) {
					t.Errorf("err = %v is also %v", err, other)
				}
			}
			if len(got) != 1 || got[0].PartitionKey != "kept" {
				t.Errorf("dst changed on error: %+v", got)
			}
			if tc.want != ErrNotAggregated && !strings.HasPrefix(err.Error(), "kpl: ") {
				t.Errorf("err = %q, want context starting with kpl:", err)
			}
		})
	}
}

func TestDeaggregateWireForms(t *testing.T) {
	// Forms a proto2 parser takes that Aggregator never writes.
	unknown := func(b []byte) []byte {
		b = fVarint(b, 15, 7)
		b = protowire.AppendTag(b, 16, protowire.Fixed32Type)
		b = protowire.AppendFixed32(b, 1)
		b = protowire.AppendTag(b, 17, protowire.Fixed64Type)
		b = protowire.AppendFixed64(b, 2)
		b = protowire.AppendTag(b, 18, protowire.StartGroupType)
		b = fVarint(b, 1, 1)
		b = protowire.AppendTag(b, 18, protowire.EndGroupType)
		return fBytes(b, 19, []byte("unknown"))
	}
	for _, tc := range []struct {
		name string
		body []byte
		want []UserRecord
	}{
		{
			name: "records before the tables they index",
			body: ehkEntry(pkEntry(pkEntry(rec(rec(nil, recFields(1, "one")), fVarint(recFields(0, "zero"), fieldExplicitHashKeyIndex, 0)), "p0"), "p1"), "42"),
			want: []UserRecord{{PartitionKey: "p1", Data: []byte("one")}, {PartitionKey: "p0", ExplicitHashKey: "42", Data: []byte("zero")}},
		},
		{
			name: "unknown fields everywhere",
			body: unknown(rec(unknown(pkEntry(nil, "k")), fBytes(unknown(recFields(0, "d")), fieldTags, unknown(fBytes(nil, fieldTagKey, []byte("t")))))),
			want: []UserRecord{{PartitionKey: "k", Data: []byte("d"), Tags: []Tag{{Key: "t"}}}},
		},
		{
			name: "known numbers with another wire type are unknown fields",
			body: rec(fVarint(pkEntry(nil, "k"), fieldPartitionKeyTable, 3), fVarint(recFields(0, "d"), fieldData, 1)),
			want: []UserRecord{{PartitionKey: "k", Data: []byte("d")}},
		},
		{
			name: "last value of a repeated singular field wins",
			body: rec(pkEntry(pkEntry(nil, "k0"), "k1"), fBytes(fVarint(recFields(0, "first"), fieldPartitionKeyIndex, 1), fieldData, []byte("last"))),
			want: []UserRecord{{PartitionKey: "k1", Data: []byte("last")}},
		},
		{
			name: "empty data and empty keys",
			body: rec(ehkEntry(pkEntry(nil, ""), ""), fVarint(recFields(0, ""), fieldExplicitHashKeyIndex, 0)),
			want: []UserRecord{{PartitionKey: "", Data: []byte{}}},
		},
		{
			name: "no user records",
			body: pkEntry(nil, "lonely"),
			want: nil,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Deaggregate(frame(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestDeaggregateAliasesData(t *testing.T) {
	data := mustAggregate(t,
		UserRecord{PartitionKey: "a", Data: []byte("first")},
		UserRecord{PartitionKey: "b", Data: []byte("second")})
	got, err := Deaggregate(data)
	if err != nil {
		t.Fatal(err)
	}
	if cap(got[0].Data) != len(got[0].Data) {
		t.Errorf("cap(Data) = %d, want %d: appending would overwrite the next field", cap(got[0].Data), len(got[0].Data))
	}
	i := bytes.Index(data, []byte("first"))
	data[i] = 'F'
	if string(got[0].Data) != "First" {
		t.Errorf("Data = %q, want it to alias the input (%q)", got[0].Data, "First")
	}
	if got[0].PartitionKey != "a" {
		t.Errorf("PartitionKey = %q, keys must be copies", got[0].PartitionKey)
	}
}

func TestAppendDeaggregate(t *testing.T) {
	a := mustAggregate(t, UserRecord{PartitionKey: "a", Data: []byte("1")}, UserRecord{PartitionKey: "a", Data: []byte("2")})
	b := mustAggregate(t, UserRecord{PartitionKey: "b", Data: []byte("3")}, UserRecord{PartitionKey: "c", Data: []byte("4")})
	got, err := AppendDeaggregate(nil, a)
	if err != nil {
		t.Fatal(err)
	}
	if got, err = AppendDeaggregate(got, b); err != nil {
		t.Fatal(err)
	}
	var s []string
	for _, r := range got {
		s = append(s, r.PartitionKey+"="+string(r.Data))
	}
	if want := "a=1 a=2 b=3 c=4"; strings.Join(s, " ") != want {
		t.Errorf("got %v, want %s", s, want)
	}
}

func TestDeaggregateAllocations(t *testing.T) {
	var recs []UserRecord
	for i := range 500 {
		recs = append(recs, UserRecord{PartitionKey: fmt.Sprintf("key-%d", i), Data: bytes.Repeat([]byte{byte(i)}, 100)})
	}
	data := mustAggregate(t, recs...)
	dst := make([]UserRecord, 0, 500)
	allocs := testing.AllocsPerRun(20, func() {
		if _, err := AppendDeaggregate(dst[:0], data); err != nil {
			t.Fatal(err)
		}
	})
	// One allocation for all key bytes and one for the key tables, whatever the record count.
	if allocs > 2 {
		t.Errorf("%.0f allocations per aggregate of 500 user records, want at most 2", allocs)
	}
}

// TestDeaggregateAWSKinesisAggSample reads an aggregate made by aws-kinesis-agg 4.2.8 (from
// records a:0001, b with explicit hash key 123 and no data, c:ff), so a foreign encoding is
// checked even where node is not installed.
func TestDeaggregateAWSKinesisAggSample(t *testing.T) {
	data, err := base64.StdEncoding.DecodeString("84mawgoBYQoBYgoBYxIDMTIzGgYIABoCAAEaBggBEAAaABoFCAIaAf8cR36aJUIqJlfG1YRDxQP7")
	if err != nil {
		t.Fatal(err)
	}
	got, err := Deaggregate(data)
	if err != nil {
		t.Fatal(err)
	}
	want := []UserRecord{
		{PartitionKey: "a", Data: []byte{0, 1}},
		{PartitionKey: "b", ExplicitHashKey: "123", Data: []byte{}},
		{PartitionKey: "c", Data: []byte{0xff}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
	// The module writes what Aggregator writes for the same records, byte for byte.
	a, _ := NewAggregator(1 << 20)
	for _, r := range want {
		if err := a.Add(r); err != nil {
			t.Fatal(err)
		}
	}
	if out, _ := a.Flush(); !bytes.Equal(out.Data, data) {
		t.Errorf("Aggregator wrote %x\naws-kinesis-agg wrote %x", out.Data, data)
	}
}
