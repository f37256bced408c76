package kpl

import (
	"math/big"
	"testing"
)

// bigHash is s read by math/big, the reference ParseHashKey is checked against.
func bigHash(t testing.TB, s string) HashKey {
	b, ok := new(big.Int).SetString(s, 10)
	if !ok {
		t.Fatalf("bad decimal %q", s)
	}
	lo := new(big.Int).And(b, new(big.Int).SetUint64(^uint64(0)))
	hi := new(big.Int).Rsh(b, 64)
	return HashKey{Hi: hi.Uint64(), Lo: lo.Uint64()}
}

func TestParseHashKeyTable(t *testing.T) {
	for _, c := range []struct {
		in string
		ok bool
	}{
		{"0", true},
		{"1", true},
		{"18446744073709551615", true},
		{"18446744073709551616", true},
		{"340282366920938463463374607431768211455", true},
		{"0000340282366920938463463374607431768211455", true}, // leading zeros, as the KCL's BigInteger
		{"340282366920938463463374607431768211456", false},
		{"999999999999999999999999999999999999999", false},
		{"3402823669209384634633746074317682114550", false},
		{"", false},
		{"-1", false},
		{"+1", false},
		{"12a", false},
		{" 1", false},
	} {
		got, err := ParseHashKey(c.in)
		if (err == nil) != c.ok {
			t.Errorf("ParseHashKey(%q) error = %v, want ok=%v", c.in, err, c.ok)
			continue
		}
		if c.ok {
			if want := bigHash(t, c.in); got != want {
				t.Errorf("ParseHashKey(%q) = %v, want %v", c.in, got, want)
			}
		}
	}
}

// FuzzParseHashKey checks the parser against math/big on any input, and String against the
// canonical decimal form.
func FuzzParseHashKey(f *testing.F) {
	for _, s := range []string{"0", "340282366920938463463374607431768211455", "340282366920938463463374607431768211456", "", "x1", "00001"} {
		f.Add(s)
	}
	limit := new(big.Int).Lsh(big.NewInt(1), 128)
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParseHashKey(s)
		b, ok := new(big.Int).SetString(s, 10)
		valid := ok && b.Sign() >= 0 && b.Cmp(limit) < 0 && s[0] != '+' && s[0] != '-'
		for i := 0; valid && i < len(s); i++ {
			valid = s[i] >= '0' && s[i] <= '9'
		}
		if valid != (err == nil) {
			t.Fatalf("ParseHashKey(%q) error = %v, math/big says valid=%v", s, err, valid)
		}
		if valid {
			if got != bigHash(t, s) {
				t.Fatalf("ParseHashKey(%q) = %v, want %v", s, got, bigHash(t, s))
			}
			if got.String() != b.String() {
				t.Fatalf("ParseHashKey(%q).String() = %s, want %s", s, got.String(), b.String())
			}
		}
	})
}
