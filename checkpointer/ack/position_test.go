package ack_test

import (
	"errors"
	"math/big"
	"strings"
	"testing"

	"github.com/benthos-kinesis/benthos-kinesis/checkpointer/ack"
)

// A real sequence number: 56 digits, about 186 bits.
const realSeq = "49590338271490256608559692538361571095921575989136588898"

func mustPos(t testing.TB, seq string, sub uint64) ack.Position {
	t.Helper()
	p, err := ack.ParsePosition(seq, sub)
	if err != nil {
		t.Fatalf("ParsePosition(%q, %d): %v", seq, sub, err)
	}
	return p
}

func TestParsePosition(t *testing.T) {
	longest := "1" + strings.Repeat("0", ack.MaxSequenceNumberDigits-1)
	tests := []struct {
		name  string
		seq   string
		valid bool
	}{
		{"zero", "0", true},
		{"one digit", "7", true},
		{"real", realSeq, true},
		{"beyond 128 bits", "340282366920938463463374607431768211456", true}, // 2^128
		{"leading zeros", "000123", true},
		{"all zeros", "0000", true},
		{"longest", longest, true},
		{"longest with leading zeros", "000" + longest, true},
		{"too long", longest + "0", false},
		{"empty", "", false},
		{"sign plus", "+1", false},
		{"sign minus", "-1", false},
		{"space", " 1", false},
		{"trailing space", "1 ", false},
		{"letter", "12a3", false},
		{"underscore", "1_000", false},
		{"hex", "0x10", false},
		{"decimal point", "1.5", false},
		{"non-ASCII digit", "1٣", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, sub := range []uint64{0, 5, ack.WholeRecord} {
				p, err := ack.ParsePosition(tt.seq, sub)
				if !tt.valid {
					if err == nil || !errors.Is(err, ack.ErrInvalidSequenceNumber) {
						t.Fatalf("ParsePosition(%q) = %v, %v; want ErrInvalidSequenceNumber", tt.seq, p, err)
					}
					if !p.IsZero() {
						t.Fatalf("invalid input gave a non-zero position %v", p)
					}
					continue
				}
				if err != nil {
					t.Fatalf("ParsePosition(%q): %v", tt.seq, err)
				}
				if p.IsZero() || p.SequenceNumber() != tt.seq {
					t.Fatalf("SequenceNumber() = %q, want %q", p.SequenceNumber(), tt.seq)
				}
				got, ok := p.SubSequence()
				if ok != (sub != ack.WholeRecord) || got != sub {
					t.Fatalf("SubSequence() = %d, %v for sub %d", got, ok, sub)
				}
			}
			w, err := ack.ParseSequenceNumber(tt.seq)
			if (err == nil) != tt.valid {
				t.Fatalf("ParseSequenceNumber(%q) error %v, valid %v", tt.seq, err, tt.valid)
			}
			if _, ok := w.SubSequence(); tt.valid && ok {
				t.Fatalf("ParseSequenceNumber(%q) is not a whole record", tt.seq)
			}
		})
	}
}

func TestPositionCompare(t *testing.T) {
	const W = ack.WholeRecord
	tests := []struct {
		a    string
		asub uint64
		b    string
		bsub uint64
		want int
	}{
		{"1", W, "1", W, 0},
		{"1", W, "2", W, -1},
		{"9", W, "10", W, -1},                   // length first
		{"10", W, "9", W, 1},                    // not lexicographic
		{"010", W, "10", W, 0},                  // leading zeros do not count
		{"0", W, "000", W, 0},                   // zero
		{"0", W, "1", W, -1},                    // zero below one
		{"0009", W, "10", W, -1},                // longer string, smaller number
		{"123", 0, "123", 1, -1},                // same aggregate, sub-sequence decides
		{"123", 7, "123", 7, 0},                 // same user record
		{"123", 7, "123", W, -1},                // whole record after its user records
		{"123", W, "124", 0, -1},                // next record's first user record after the whole
		{"124", 0, "123", W, 1},                 // sequence number before sub-sequence
		{realSeq, W, realSeq[:55] + "9", W, -1}, // last digit 8 < 9
		{realSeq, 3, "0" + realSeq, 3, 0},
		{"340282366920938463463374607431768211455", W, "340282366920938463463374607431768211456", W, -1},
	}
	for _, tt := range tests {
		a, b := mustPos(t, tt.a, tt.asub), mustPos(t, tt.b, tt.bsub)
		if got := a.Compare(b); got != tt.want {
			t.Errorf("%v.Compare(%v) = %d, want %d", a, b, got, tt.want)
		}
		if got := b.Compare(a); got != -tt.want {
			t.Errorf("%v.Compare(%v) = %d, want %d", b, a, got, -tt.want)
		}
	}
}

func TestPositionZero(t *testing.T) {
	var z ack.Position
	if !z.IsZero() || z.String() != "none" || z.SequenceNumber() != "" {
		t.Fatalf("zero Position: IsZero %v, String %q, SequenceNumber %q", z.IsZero(), z.String(), z.SequenceNumber())
	}
	if z.Compare(z) != 0 {
		t.Fatal("zero Position is not equal to itself")
	}
	for _, p := range []ack.Position{mustPos(t, "0", 0), mustPos(t, "00", 0), mustPos(t, realSeq, ack.WholeRecord)} {
		if z.Compare(p) != -1 || p.Compare(z) != 1 {
			t.Errorf("zero Position does not order before %v", p)
		}
	}
}

func TestPositionString(t *testing.T) {
	tests := []struct {
		seq  string
		sub  uint64
		want string
	}{
		{"123", ack.WholeRecord, "123"},
		{"123", 0, "123/0"},
		{"0042", 17, "0042/17"},
		{"5", ack.WholeRecord - 1, "5/18446744073709551614"},
	}
	for _, tt := range tests {
		if got := mustPos(t, tt.seq, tt.sub).String(); got != tt.want {
			t.Errorf("String() = %q, want %q", got, tt.want)
		}
	}
}

func TestPositionCompareDoesNotAllocate(t *testing.T) {
	a, b := mustPos(t, "000"+realSeq, 3), mustPos(t, realSeq, 4)
	var sink int
	if n := testing.AllocsPerRun(1000, func() { sink += a.Compare(b) }); n != 0 {
		t.Fatalf("Compare allocates %v times", n)
	}
	_ = sink
}

// bigOracle is what math/big makes of a sequence number: ok when it is a valid one.
func bigOracle(s string) (*big.Int, bool) {
	if s == "" || s[0] == '+' || s[0] == '-' {
		return nil, false
	}
	x, ok := new(big.Int).SetString(s, 10)
	if !ok || x.Sign() < 0 || len(x.String()) > ack.MaxSequenceNumberDigits {
		return nil, false
	}
	return x, true
}

func FuzzPosition(f *testing.F) {
	seeds := []struct {
		a, b   string
		sa, sb uint64
	}{
		{"1", "2", 0, 0},
		{"9", "10", ack.WholeRecord, 0},
		{"0010", "10", 3, 3},
		{realSeq, "0" + realSeq, 1, ack.WholeRecord},
		{"", "0", 0, 0},
		{"+5", "5", 0, 0},
		{"-0", "0", 0, 0},
		{"1_0", "10", 0, 0},
		{"0x1", "1", 0, 0},
		{"1" + strings.Repeat("0", 128), "1" + strings.Repeat("0", 129), 0, 0},
		{"00" + strings.Repeat("9", 129), strings.Repeat("9", 129), 0, 0},
	}
	for _, s := range seeds {
		f.Add(s.a, s.b, s.sa, s.sb)
	}
	f.Fuzz(func(t *testing.T, a, b string, sa, sb uint64) {
		pa, errA := ack.ParsePosition(a, sa)
		pb, errB := ack.ParsePosition(b, sb)
		xa, okA := bigOracle(a)
		xb, okB := bigOracle(b)
		if (errA == nil) != okA {
			t.Fatalf("ParsePosition(%q): err %v, math/big valid %v", a, errA, okA)
		}
		if (errB == nil) != okB {
			t.Fatalf("ParsePosition(%q): err %v, math/big valid %v", b, errB, okB)
		}
		if !okA || !okB {
			return
		}
		want := xa.Cmp(xb)
		if want == 0 {
			want = cmpUint(sa, sb)
		}
		if got := pa.Compare(pb); got != want {
			t.Fatalf("(%q,%d).Compare(%q,%d) = %d, want %d", a, sa, b, sb, got, want)
		}
		if got := pb.Compare(pa); got != -want {
			t.Fatalf("(%q,%d).Compare(%q,%d) = %d, want %d", b, sb, a, sa, got, -want)
		}
		if pa.SequenceNumber() != a || pa.IsZero() {
			t.Fatalf("SequenceNumber() = %q, want %q", pa.SequenceNumber(), a)
		}
		// String round-trips through the sequence number and the sub-sequence number.
		seq, sub, _ := strings.Cut(pa.String(), "/")
		if seq != a || (sub == "") != (sa == ack.WholeRecord) {
			t.Fatalf("String() = %q for (%q, %d)", pa.String(), a, sa)
		}
	})
}

func cmpUint(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
