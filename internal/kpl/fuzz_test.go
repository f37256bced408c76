package kpl

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"unsafe"
)

// seedAggregates are valid aggregates for the fuzzers' in-code seeds; more, including one made
// by aws-kinesis-agg, are in testdata/fuzz.
func seedAggregates(t testing.TB) [][]byte {
	return [][]byte{
		mustAggregate(t, UserRecord{PartitionKey: "a", Data: []byte("x")}, UserRecord{PartitionKey: "b", ExplicitHashKey: "99"}),
		mustAggregate(t,
			UserRecord{PartitionKey: "k", Data: []byte{0, 1, 2}, Tags: []Tag{{Key: "t", Value: "v"}}},
			UserRecord{PartitionKey: "k", ExplicitHashKey: "0", Data: magic[:]},
			UserRecord{PartitionKey: "é", ExplicitHashKey: "0", Data: nil}),
	}
}

// FuzzDeaggregate: arbitrary bytes never panic, fail only with the package's errors, yield no
// more user records than the input can hold, and what decodes survives a round trip through
// Aggregator exactly. Each input is tried as a Kinesis record and, since random bytes almost
// never carry a matching MD5, also as a message framed with magic and digest, so the fuzzer
// reaches the protobuf parser.
func FuzzDeaggregate(f *testing.F) {
	for _, s := range seedAggregates(f) {
		f.Add(s)
		f.Add(s[magicLen : len(s)-checksumLen])
	}
	f.Add([]byte{})
	f.Add(magic[:])
	f.Add(frame(nil))
	f.Add(pkEntry(nil, "k"))
	f.Fuzz(func(t *testing.T, data []byte) {
		checkDeaggregate(t, data)
		checkDeaggregate(t, frame(data))
	})
}

func checkDeaggregate(t *testing.T, data []byte) {
	t.Helper()
	recs, err := Deaggregate(data)
	if err != nil {
		n := 0
		for _, e := range []error{ErrNotAggregated, ErrChecksum, ErrMalformed, ErrIndexOutOfRange} {
			if errors.Is(err, e) {
				n++
			}
		}
		if n != 1 {
			t.Fatalf("error %v is %d of the package's errors, want exactly 1", err, n)
		}
		if recs != nil {
			t.Fatalf("records %v with error %v", recs, err)
		}
		return
	}
	if !IsAggregated(data) {
		t.Fatalf("Deaggregate read %d user records from a record IsAggregated refuses", len(recs))
	}
	// The smallest user record is 6 bytes of message (tag and length, index, data).
	if len(recs) > (len(data)-Overhead)/6 {
		t.Fatalf("%d user records from %d bytes", len(recs), len(data))
	}
	for i, r := range recs {
		if len(r.Data) > 0 && !within(r.Data, data) {
			t.Fatalf("user record %d: Data does not alias the input", i)
		}
	}
	roundTrip(t, recs)
}

// within reports whether sub lies inside whole's memory.
func within(sub, whole []byte) bool {
	s, w := uintptr(unsafe.Pointer(unsafe.SliceData(sub))), uintptr(unsafe.Pointer(unsafe.SliceData(whole)))
	return s >= w && s+uintptr(len(sub)) <= w+uintptr(len(whole))
}

// roundTrip aggregates recs in one aggregate and checks they read back equal, unless one of them
// is not valid for Kinesis (fuzzed keys often are not).
func roundTrip(t *testing.T, recs []UserRecord) {
	t.Helper()
	a, err := NewAggregator(1 << 30)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		if err := a.Add(r); err != nil {
			if errors.Is(err, ErrInvalidRecord) {
				return
			}
			t.Fatal(err)
		}
	}
	out, ok := a.Flush()
	if !ok {
		return
	}
	var got []UserRecord
	if out.Records == 1 {
		got = []UserRecord{{PartitionKey: out.PartitionKey, ExplicitHashKey: out.ExplicitHashKey, Data: out.Data, Tags: recs[0].Tags}}
	} else if got, err = Deaggregate(out.Data); err != nil {
		t.Fatalf("re-aggregated records do not read back: %v", err)
	}
	if !equalRecords(got, recs) {
		t.Fatalf("round trip differs:\n got %+v\nwant %+v", got, recs)
	}
}

// equalRecords compares user records, an empty Data or Tags equal to a nil one, and a tag's
// empty value equal to an absent one (both read back as "").
func equalRecords(a, b []UserRecord) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		x, y := a[i], b[i]
		if x.PartitionKey != y.PartitionKey || x.ExplicitHashKey != y.ExplicitHashKey || !bytes.Equal(x.Data, y.Data) ||
			len(x.Tags) != len(y.Tags) || (len(x.Tags) > 0 && !reflect.DeepEqual(x.Tags, y.Tags)) {
			return false
		}
	}
	return true
}

// FuzzRoundTrip: any user records the Aggregator accepts, packed under any limit, read back
// exactly and in order, and no aggregate is over the limit or differs from its announced Size.
func FuzzRoundTrip(f *testing.F) {
	f.Add([]byte("hello\x00world\xff"), "key", "", uint16(200), uint8(3))
	f.Add([]byte{}, "k", "340282366920938463463374607431768211455", uint16(0), uint8(1))
	f.Add(bytes.Repeat([]byte{0xF3, 0x89, 0x9A, 0xC2}, 100), "ключ", "0", uint16(60), uint8(7))
	f.Fuzz(func(t *testing.T, seed []byte, pk, ehk string, limit uint16, keys uint8) {
		maxSize := Overhead + 7 + int(limit)
		a, err := NewAggregator(maxSize)
		if err != nil {
			t.Fatal(err)
		}
		// Records cut from seed, each with one of a few partition keys, some with the hash key
		// and some with a tag.
		var want, got []UserRecord
		flush := func() {
			size := a.Size()
			out, ok := a.Flush()
			if !ok {
				return
			}
			if len(out.Data) > maxSize {
				t.Fatalf("%d-byte record over the limit %d", len(out.Data), maxSize)
			}
			if out.Records == 1 {
				// A lone record's tags are not sent: compare without them.
				got = append(got, UserRecord{PartitionKey: out.PartitionKey, ExplicitHashKey: out.ExplicitHashKey, Data: out.Data, Tags: want[len(got)].Tags})
				return
			}
			if len(out.Data) != size {
				t.Fatalf("%d-byte aggregate, Size said %d", len(out.Data), size)
			}
			if out.PartitionKey != aggregatePartitionKey {
				t.Fatalf("aggregate partition key %q", out.PartitionKey)
			}
			recs, err := Deaggregate(out.Data)
			if err != nil {
				t.Fatal(err)
			}
			if len(recs) != out.Records {
				t.Fatalf("%d user records read, %d written", len(recs), out.Records)
			}
			if hk, _ := recs[0].HashKey(); hk.String() != out.ExplicitHashKey {
				t.Fatalf("aggregate hash key %s, first user record's %s", out.ExplicitHashKey, hk)
			}
			got = append(got, recs...)
		}
		for i := 0; len(seed) > 0; i++ {
			n := min(int(seed[0]), len(seed)-1)
			r := UserRecord{PartitionKey: fmt.Sprintf("%s%d", pk, i%(int(keys)+1)), Data: seed[1 : 1+n]}
			seed = seed[1+n:]
			if i%3 == 1 {
				r.ExplicitHashKey = ehk
			}
			if i%4 == 2 {
				r.Tags = []Tag{{Key: pk, Value: ehk}}
			}
			err := a.Add(r)
			if errors.Is(err, ErrFull) {
				flush()
				err = a.Add(r)
			}
			switch {
			case err == nil:
				want = append(want, r)
			case errors.Is(err, ErrInvalidRecord), errors.Is(err, ErrRecordTooLarge):
				if errors.Is(err, ErrRecordTooLarge) && aloneSize(r) <= maxSize {
					t.Fatalf("ErrRecordTooLarge for a record that fits alone: %v", err)
				}
			default:
				t.Fatalf("record %d: %v", i, err)
			}
		}
		flush()
		if !equalRecords(got, want) {
			t.Fatalf("round trip differs:\n got %+v\nwant %+v", got, want)
		}
	})
}
