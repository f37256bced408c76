package verify

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"
)

const line1 = `{"k":"key-3","n":17,"shard":"shardId-000000000001","seq":"49590338271490256608559692538361571095921575989136588818","t":1732570000123456789,"w":"r2.1"}`

var want1 = Delivery{
	Key: "key-3", N: 17, Shard: "shardId-000000000001",
	Seq: "49590338271490256608559692538361571095921575989136588818",
	At:  1732570000123456789, Incarnation: "r2.1", Source: "f", Line: 1,
}

func TestParseDeliveries(t *testing.T) {
	tests := []struct {
		name      string
		in        string
		want      []Delivery // Source "f"; Line as given
		torn      int        // FileStats.TornLine
		errLine   int        // >0: a *LineError at this line
		errSubstr string
	}{
		{name: "empty", in: ""},
		{name: "one line", in: line1 + "\n", want: []Delivery{want1}},
		{
			// What Benthos writes: encoding/json sorts the keys of a map.
			name: "keys in any order, whitespace, extra fields",
			in: "{\"k\":\"key-0\",\"n\":0,\"seq\":\"1\",\"shard\":\"s\",\"t\":5,\"w\":\"r1.0\"}\n" +
				" { \"w\" : \"r1.0\" , \"t\" : -5 , \"x\" : [1, -2.5e3, {\"y\": null}, true, \"\\\"\"], \"shard\" : \"s\",\t\"seq\":\"2\", \"n\":1, \"k\":\"key-0\" }\r\n",
			want: []Delivery{
				{Key: "key-0", N: 0, Shard: "s", Seq: "1", At: 5, Incarnation: "r1.0", Line: 1},
				{Key: "key-0", N: 1, Shard: "s", Seq: "2", At: -5, Incarnation: "r1.0", Line: 2},
			},
		},
		{
			name: "escaped strings",
			in:   `{"k":"key-\u0030","n":0,"shard":"s\/1","seq":"1","t":5,"w":"r\"1"}` + "\n",
			want: []Delivery{{Key: "key-0", N: 0, Shard: "s/1", Seq: "1", At: 5, Incarnation: `r"1`, Line: 1}},
		},
		{
			name: "torn final line is ignored",
			in:   line1 + "\n" + line1[:40],
			want: []Delivery{want1},
			torn: 2,
		},
		{
			// Killed between writing the object and its newline: the line
			// is whole but cannot be told from a torn one.
			name: "unterminated complete final line is ignored",
			in:   line1 + "\n" + line1,
			want: []Delivery{want1},
			torn: 2,
		},
		{name: "malformed middle line", in: line1 + "\n" + line1[:40] + "\n" + line1 + "\n", errLine: 2, errSubstr: "f:2:"},
		{name: "empty line", in: line1 + "\n\n" + line1 + "\n", errLine: 2, errSubstr: "not a JSON object"},
		{name: "missing field", in: `{"k":"key-0","n":0,"shard":"s","seq":"1","w":"r1.0"}` + "\n", errLine: 1, errSubstr: `missing field "t"`},
		{name: "n as a string", in: strings.Replace(line1, `"n":17`, `"n":"17"`, 1) + "\n", errLine: 1, errSubstr: `field "n": expected a number`},
		{name: "n with a fraction", in: strings.Replace(line1, `"n":17`, `"n":17.5`, 1) + "\n", errLine: 1, errSubstr: "not an integer"},
		{name: "n with an exponent", in: strings.Replace(line1, `"n":17`, `"n":1e3`, 1) + "\n", errLine: 1, errSubstr: "not an integer"},
		{name: "n with a leading zero", in: strings.Replace(line1, `"n":17`, `"n":017`, 1) + "\n", errLine: 1, errSubstr: "leading zero"},
		{name: "t out of range", in: strings.Replace(line1, `"t":1732570000123456789`, `"t":9223372036854775808`, 1) + "\n", errLine: 1, errSubstr: "out of range"},
		{name: "null string", in: strings.Replace(line1, `"w":"r2.1"`, `"w":null`, 1) + "\n", errLine: 1, errSubstr: "expected a string"},
		{name: "bad escape", in: strings.Replace(line1, `"w":"r2.1"`, `"w":"r\x"`, 1) + "\n", errLine: 1, errSubstr: "bad string"},
		{name: "control character", in: strings.Replace(line1, `"w":"r2.1"`, "\"w\":\"r\t\"", 1) + "\n", errLine: 1, errSubstr: "control character"},
		{name: "trailing data", in: line1 + "x\n", errLine: 1, errSubstr: "data after"},
		{name: "two objects", in: line1 + line1 + "\n", errLine: 1, errSubstr: "data after"},
		{name: "unterminated object", in: line1[:len(line1)-1] + "\n", errLine: 1, errSubstr: "expected ',' or '}'"},
		{name: "bad extra field", in: strings.Replace(line1, `{`, `{"x":[1,],`, 1) + "\n", errLine: 1, errSubstr: `field "x"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// One byte at a time: lines cross every read boundary.
			ds, st, err := ParseDeliveries(iotest.OneByteReader(strings.NewReader(tt.in)), "f")
			if tt.errLine > 0 {
				var le *LineError
				if !errors.As(err, &le) || le.Line != tt.errLine || le.Source != "f" {
					t.Fatalf("err = %v, want a *LineError at f:%d", err, tt.errLine)
				}
				if !strings.Contains(err.Error(), tt.errSubstr) {
					t.Errorf("err = %q, want it to contain %q", err, tt.errSubstr)
				}
				if ds != nil {
					t.Errorf("deliveries returned with an error: %v", ds)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for i := range tt.want {
				tt.want[i].Source = "f"
			}
			if len(ds) != len(tt.want) {
				t.Fatalf("got %d deliveries %v, want %v", len(ds), ds, tt.want)
			}
			for i := range ds {
				if ds[i] != tt.want[i] {
					t.Errorf("delivery %d:\n got %+v\nwant %+v", i, ds[i], tt.want[i])
				}
			}
			if st.Source != "f" || st.Deliveries != len(tt.want) || st.TornLine != tt.torn {
				t.Errorf("stats %+v, want %d deliveries, torn line %d", st, len(tt.want), tt.torn)
			}
			if tt.torn > 0 && st.TornBytes == 0 {
				t.Errorf("torn line without bytes: %+v", st)
			}
		})
	}
}

func TestParseDeliveriesLongLines(t *testing.T) {
	// Longer than the reader's buffer: assembled from pieces.
	long := strings.Replace(line1, `{`, `{"pad":"`+strings.Repeat("x", 600<<10)+`",`, 1)
	ds, _, err := ParseDeliveries(strings.NewReader(line1+"\n"+long+"\n"+line1+"\n"), "f")
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) != 3 || ds[1].N != 17 || ds[2].Line != 3 {
		t.Errorf("got %+v", ds)
	}

	tooLong := strings.Replace(line1, `{`, `{"pad":"`+strings.Repeat("x", maxLineBytes)+`",`, 1)
	_, _, err = ParseDeliveries(strings.NewReader(line1+"\n"+tooLong+"\n"), "f")
	var le *LineError
	if !errors.As(err, &le) || le.Line != 2 {
		t.Errorf("err = %v, want a *LineError at line 2", err)
	}
}

func TestParseDeliveriesReadError(t *testing.T) {
	boom := errors.New("boom")
	r := io.MultiReader(strings.NewReader(line1+"\n"), iotest.ErrReader(boom))
	_, _, err := ParseDeliveries(r, "f")
	if !errors.Is(err, boom) || !strings.Contains(err.Error(), "f after line 1") {
		t.Errorf("err = %v", err)
	}
}

func TestReadDeliveryFiles(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "r1.0.jsonl"), filepath.Join(dir, "r2.0.jsonl")
	write := func(path string, ds ...Delivery) {
		var buf []byte
		for _, d := range ds {
			buf = append(d.AppendJSON(buf), '\n')
		}
		if path == b {
			buf = append(buf, `{"k":"key-0","n`...) // killed mid-write
		}
		if err := os.WriteFile(path, buf, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(a, del(0, 0, "r1.0", 0), del(0, 1, "r1.0", 1))
	write(b, del(0, 2, "r2.0", 2))

	ds, stats, err := ReadDeliveryFiles(a, b)
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) != 3 || ds[0].Source != a || ds[2].Source != b || ds[2].Line != 1 || ds[2].N != 2 {
		t.Errorf("deliveries %+v", ds)
	}
	if len(stats) != 2 || stats[0].TornLine != 0 || stats[1].TornLine != 2 || stats[1].Deliveries != 1 {
		t.Errorf("stats %+v", stats)
	}
	// Strings repeated across files are shared.
	if ds[0].Shard != ds[2].Shard || ds[0].Key != ds[2].Key {
		t.Errorf("shards %q %q, keys %q %q", ds[0].Shard, ds[2].Shard, ds[0].Key, ds[2].Key)
	}

	missing := filepath.Join(dir, "missing.jsonl")
	if _, _, err := ReadDeliveryFiles(a, missing); !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), missing) {
		t.Errorf("err = %v, want one naming %s", err, missing)
	}
	bad := filepath.Join(dir, "bad.jsonl")
	if err := os.WriteFile(bad, []byte(line1+"\nnope\n"+line1+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, _, err = ReadDeliveryFiles(a, bad)
	var le *LineError
	if !errors.As(err, &le) || le.Source != bad || le.Line != 2 {
		t.Errorf("err = %v, want a *LineError at %s:2", err, bad)
	}
}

func TestAppendJSON(t *testing.T) {
	d := want1
	if got := string(d.AppendJSON(nil)); got != line1 {
		t.Errorf("got  %s\nwant %s", got, line1)
	}
	d = Delivery{Key: "k\"\\\x01é", N: -3, Shard: "\xff", Incarnation: "\u2028"}
	got := string(d.AppendJSON(nil))
	want := `{"k":"k\"\\\u0001é","n":-3,"shard":"\ufffd","seq":"","t":0,"w":"` + "\u2028" + `"}`
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

func FuzzParseDeliveries(f *testing.F) {
	f.Add([]byte(line1 + "\n"))
	f.Add([]byte(line1 + "\n" + line1[:30]))
	f.Add([]byte(`{"k":"key-\u0030","n":-0,"shard":"s\/1","seq":"","t":5,"w":"r\"1","x":[{},[],null]}` + "\n"))
	f.Add([]byte(`{"k":"\xff","n":1,"shard":"","seq":"","t":0,"w":""}` + "\n"))
	f.Add([]byte("\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		ds, st, err := ParseDeliveries(bytes.NewReader(data), "f")
		if err != nil {
			return
		}
		if st.Deliveries != len(ds) {
			t.Fatalf("stats say %d deliveries, got %d", st.Deliveries, len(ds))
		}
		// What was accepted reads back the same from its canonical form.
		var buf []byte
		for _, d := range ds {
			buf = append(d.AppendJSON(buf), '\n')
		}
		again, st2, err := ParseDeliveries(bytes.NewReader(buf), "f")
		if err != nil {
			t.Fatalf("canonical form rejected: %v\n%s", err, buf)
		}
		if st2.TornLine != 0 || len(again) != len(ds) {
			t.Fatalf("round trip gave %d deliveries (torn %d), want %d", len(again), st2.TornLine, len(ds))
		}
		for i := range ds {
			if again[i] != ds[i] {
				t.Fatalf("delivery %d:\n got %+v\nwant %+v", i, again[i], ds[i])
			}
		}
	})
}

func TestDistinct(t *testing.T) {
	ds := []Delivery{del(0, 0, "a", 0), del(0, 1, "a", 1), del(0, 0, "b", 2), del(1, 0, "b", 3), del(9, 9, "b", 4)}
	if got := Distinct(ds); got != 4 {
		t.Errorf("Distinct = %d, want 4", got)
	}
	if got := Distinct(nil); got != 0 {
		t.Errorf("Distinct(nil) = %d", got)
	}
}
