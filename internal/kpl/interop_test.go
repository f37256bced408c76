package kpl

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// aggModuleVersion is the aws-kinesis-agg pinned in resources/emulators/package.json.
const aggModuleVersion = "4.2.8"

// aggModule returns node and the installed aws-kinesis-agg package. When either is missing it
// skips the test, or fails it under CI=true, as internal/testenv does for the emulators: in CI a
// missing dependency is a broken build, never a reason to skip.
func aggModule(t *testing.T) (node, moduleDir string) {
	t.Helper()
	unavailable := func(format string, args ...any) {
		t.Helper()
		msg := fmt.Sprintf("kpl interop: "+format+" (the test needs node on PATH and aws-kinesis-agg "+aggModuleVersion+
			", which `make emulators-up` installs: npm ci in resources/emulators)", args...)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		unavailable("node is not on PATH: %v", err)
	}
	root, err := repoRoot()
	if err != nil {
		unavailable("%v", err)
	}
	moduleDir = filepath.Join(root, "resources", "emulators", "node_modules", "aws-kinesis-agg")
	raw, err := os.ReadFile(filepath.Join(moduleDir, "package.json"))
	if err != nil {
		unavailable("aws-kinesis-agg is not installed: %v", err)
	}
	var pkg struct{ Version string }
	if err := json.Unmarshal(raw, &pkg); err != nil {
		unavailable("reading aws-kinesis-agg's package.json: %v", err)
	}
	if pkg.Version != aggModuleVersion {
		unavailable("aws-kinesis-agg %s is installed, want the pinned %s", pkg.Version, aggModuleVersion)
	}
	return node, moduleDir
}

// repoRoot walks up from the working directory to the directory holding go.mod.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("finding the repository root: %w", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

// jsRecord is a Kinesis or user record as agg.js reads and prints it.
type jsRecord struct {
	PartitionKey    string `json:"partitionKey"`
	ExplicitHashKey string `json:"explicitHashKey,omitempty"`
	Data            string `json:"data"` // base64
	// Only in deaggregate's output:
	KinesisRecord     int  `json:"kinesisRecord"`
	Aggregated        bool `json:"aggregated"`
	SubSequenceNumber int  `json:"subSequenceNumber"`
}

// runAgg runs testdata/agg.js in mode with records on stdin and returns what it prints.
func runAgg(t *testing.T, node, moduleDir, mode string, records []jsRecord) []jsRecord {
	t.Helper()
	in, err := json.Marshal(map[string]any{"records": records})
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(t.Context(), node, filepath.Join("testdata", "agg.js"), moduleDir, mode)
	cmd.Stdin = bytes.NewReader(in)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("node agg.js %s: %v\n%s", mode, err, stderr.String())
	}
	var out struct{ Records []jsRecord }
	if err := json.Unmarshal(stdout.Bytes(), &out); err != nil {
		t.Fatalf("node agg.js %s printed %.200q: %v", mode, stdout.String(), err)
	}
	return out.Records
}

// interopRecords are user records both implementations must carry exactly: repeated and unique
// partition keys, multi-byte and 256-character keys, explicit hash keys at both ends of the ring
// and shared between records, empty and binary data (one beginning with the magic bytes), and a
// few records large enough that aws-kinesis-agg's 1 MiB limit splits them into several
// aggregates.
func interopRecords() []UserRecord {
	rng := rand.New(rand.NewPCG(10, 2026))
	randBytes := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.UintN(256))
		}
		return b
	}
	ehks := []string{"0", "340282366920938463463374607431768211455", "170141183460469231731687303715884105728", "12345678901234567890"}
	var recs []UserRecord
	for i := range 300 {
		r := UserRecord{Data: randBytes(rng.IntN(2000))}
		switch i % 5 {
		case 0, 1:
			r.PartitionKey = fmt.Sprintf("user-%d", i%7)
		case 2:
			r.PartitionKey = fmt.Sprintf("unique-%d-%x", i, rng.Uint64())
		case 3:
			r.PartitionKey = "ключ-é-🔑-" + fmt.Sprint(i%3)
		case 4:
			r.PartitionKey = strings.Repeat(string(rune('a'+i%26)), 256)
		}
		if i%4 == 1 {
			r.ExplicitHashKey = ehks[(i/4)%len(ehks)]
		}
		recs = append(recs, r)
	}
	recs[0].Data = []byte{}
	recs[150].Data = append(append([]byte(nil), magic[:]...), "not an aggregate"...)
	recs[151].Data = []byte{}
	for _, i := range []int{60, 61, 62, 200} {
		recs[i].Data = randBytes(400_000 + i)
	}
	return recs
}

func toJS(r UserRecord) jsRecord {
	return jsRecord{PartitionKey: r.PartitionKey, ExplicitHashKey: r.ExplicitHashKey, Data: base64.StdEncoding.EncodeToString(r.Data)}
}

func compareUserRecords(t *testing.T, got, want []UserRecord) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d user records, want %d", len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.PartitionKey != w.PartitionKey || g.ExplicitHashKey != w.ExplicitHashKey || !bytes.Equal(g.Data, w.Data) {
			t.Fatalf("user record %d: got key %q hash key %q %d bytes %.16x, want %q %q %d bytes %.16x",
				i, g.PartitionKey, g.ExplicitHashKey, len(g.Data), g.Data, w.PartitionKey, w.ExplicitHashKey, len(w.Data), w.Data)
		}
	}
}

// TestInteropAWSKinesisAgg checks this codec against AWS Labs' Node.js module aws-kinesis-agg,
// both ways, user record by user record.
func TestInteropAWSKinesisAgg(t *testing.T) {
	node, moduleDir := aggModule(t)
	recs := interopRecords()

	t.Run("node aggregates, go deaggregates", func(t *testing.T) {
		var in []jsRecord
		for _, r := range recs {
			in = append(in, toJS(r))
		}
		kinesisRecords := runAgg(t, node, moduleDir, "aggregate", in)
		if len(kinesisRecords) < 2 {
			t.Fatalf("aws-kinesis-agg made %d Kinesis records, want several (the test's large records overflow 1 MiB)", len(kinesisRecords))
		}
		var got []UserRecord
		for i, k := range kinesisRecords {
			data, err := base64.StdEncoding.DecodeString(k.Data)
			if err != nil {
				t.Fatal(err)
			}
			if len(data) > 1<<20 {
				t.Errorf("Kinesis record %d: %d bytes, over 1 MiB", i, len(data))
			}
			if got, err = AppendDeaggregate(got, data); err != nil {
				t.Fatalf("Kinesis record %d of %d: %v", i, len(kinesisRecords), err)
			}
		}
		compareUserRecords(t, got, recs)
		t.Logf("%d user records in %d aggregates from aws-kinesis-agg %s", len(got), len(kinesisRecords), aggModuleVersion)
	})

	t.Run("go aggregates, node deaggregates", func(t *testing.T) {
		// 1 MiB packs most records; 4 KiB makes many small aggregates, lone records (sent bare)
		// and records too large to aggregate (sent on their own, as the output does).
		for _, limit := range []int{1 << 20, 4 << 10} {
			a := newAggregator(t, limit)
			var kinesisRecords []jsRecord
			var sizes []int // user records per Kinesis record
			emit := func(out Aggregate) {
				if out.Records == 1 && IsAggregated(out.Data) {
					t.Fatalf("a lone record whose data looks aggregated would be misread; change the test data")
				}
				kinesisRecords = append(kinesisRecords, jsRecord{PartitionKey: out.PartitionKey, ExplicitHashKey: out.ExplicitHashKey,
					Data: base64.StdEncoding.EncodeToString(out.Data)})
				sizes = append(sizes, out.Records)
			}
			for _, r := range recs {
				err := a.Add(r)
				if errors.Is(err, ErrFull) {
					out, _ := a.Flush()
					emit(out)
					err = a.Add(r)
				}
				if errors.Is(err, ErrRecordTooLarge) {
					// Flush first: the held records were added before it.
					if out, ok := a.Flush(); ok {
						emit(out)
					}
					emit(Aggregate{PartitionKey: r.PartitionKey, ExplicitHashKey: r.ExplicitHashKey, Data: r.Data, Records: 1})
					continue
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			if out, ok := a.Flush(); ok {
				emit(out)
			}

			got := runAgg(t, node, moduleDir, "deaggregate", kinesisRecords)
			if len(got) != len(recs) {
				t.Fatalf("limit %d: aws-kinesis-agg found %d user records, want %d", limit, len(got), len(recs))
			}
			var gotRecs []UserRecord
			i := 0
			for k, n := range sizes {
				for sub := range n {
					g := got[i]
					if g.KinesisRecord != k || g.Aggregated != (n > 1) || (n > 1 && g.SubSequenceNumber != sub) {
						t.Fatalf("limit %d: user record %d: Kinesis record %d, aggregated %v, sub-sequence %d; want %d, %v, %d",
							limit, i, g.KinesisRecord, g.Aggregated, g.SubSequenceNumber, k, n > 1, sub)
					}
					data, err := base64.StdEncoding.DecodeString(g.Data)
					if err != nil {
						t.Fatal(err)
					}
					gotRecs = append(gotRecs, UserRecord{PartitionKey: g.PartitionKey, ExplicitHashKey: g.ExplicitHashKey, Data: data})
					i++
				}
			}
			compareUserRecords(t, gotRecs, recs)
			lone := 0
			for _, n := range sizes {
				if n == 1 {
					lone++
				}
			}
			t.Logf("limit %d: %d user records in %d Kinesis records (%d of one user record, sent bare) read back by aws-kinesis-agg",
				limit, len(recs), len(kinesisRecords), lone)
		}
	})
}
