package opscli

import (
	"strings"
	"testing"
	"time"
)

func TestParseTarget(t *testing.T) {
	at := time.Date(2026, 1, 31, 9, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		in     string
		want   target
		errHas string
	}{
		{in: "oldest", want: target{kind: toOldest}},
		{in: "TRIM_HORIZON", want: target{kind: toOldest}},
		{in: " latest ", want: target{kind: toLatest}},
		{in: "timestamp=2026-01-31T09:00:00Z", want: target{kind: toTimestamp, at: at}},
		{in: "timestamp=2026-01-31T10:00:00+01:00", want: target{kind: toTimestamp, at: at}},
		{in: "sequence=49590338271490256608559692538361571095921575989136588898", want: target{kind: toSequence, seq: "49590338271490256608559692538361571095921575989136588898"}},
		{in: "timestamp=yesterday", errHas: "RFC 3339"},
		{in: "timestamp=" + time.Now().Add(time.Hour).UTC().Format(time.RFC3339), errHas: "future"},
		{in: "sequence=", errHas: "sequence=N"},
		{in: "sequence=12a", errHas: "sequence=N"},
		{in: "oldest=1", errHas: "want oldest, latest"},
		{in: "", errHas: "want oldest, latest"},
		{in: "newest", errHas: "want oldest, latest"},
	} {
		got, err := parseTarget(c.in)
		if c.errHas != "" {
			if err == nil || !strings.Contains(err.Error(), c.errHas) {
				t.Errorf("parseTarget(%q) = %+v, %v; want an error saying %q", c.in, got, err, c.errHas)
			}
			continue
		}
		if err != nil || got.kind != c.want.kind || !got.at.Equal(c.want.at) || got.seq != c.want.seq {
			t.Errorf("parseTarget(%q) = %+v, %v; want %+v", c.in, got, err, c.want)
		}
	}
}

// FuzzParseTarget: --to never panics, and what it accepts is a whole, usable target.
func FuzzParseTarget(f *testing.F) {
	for _, s := range []string{"oldest", "latest", "trim_horizon", "timestamp=2026-01-31T09:00:00Z", "sequence=123", "sequence=", "=", "timestamp=", "x=y=z"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := parseTarget(s)
		if err != nil {
			if !strings.Contains(err.Error(), "--to") {
				t.Fatalf("parseTarget(%q): error %q does not name --to", s, err)
			}
			return
		}
		switch got.kind {
		case toOldest, toLatest:
		case toTimestamp:
			if got.at.After(time.Now().Add(time.Minute)) {
				t.Fatalf("parseTarget(%q): timestamp %v", s, got.at)
			}
		case toSequence:
			if got.seq == "" || strings.Trim(got.seq, "0123456789") != "" {
				t.Fatalf("parseTarget(%q): sequence %q", s, got.seq)
			}
		default:
			t.Fatalf("parseTarget(%q): kind %d", s, got.kind)
		}
	})
}
