package opscli

import (
	"bytes"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/redpanda-data/benthos/v4/public/service"
	"github.com/urfave/cli/v2"

	"github.com/benthos-kinesis/benthos-kinesis/internal/kinesisapi"
)

var nameSeq atomic.Int64

// cliMu serialises runCLI: urfave/cli v2 writes package-level state (the help flag and
// command) on every run, so two apps must not run at once. The rest of a test runs in parallel.
var cliMu sync.Mutex

// uniqueName returns a stream name no other test (or test run) uses.
func uniqueName(prefix string) string {
	return fmt.Sprintf("opscli-%s-%d-%d", prefix, time.Now().UnixNano(), nameSeq.Add(1))
}

// runCLI runs the command through a cli.App as the binary would, with args after the binary
// name, and returns what it wrote to its Writer and ErrWriter.
func runCLI(t *testing.T, cmd *cli.Command, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errOut bytes.Buffer
	app := &cli.App{
		Name:      "x",
		Writer:    &out,
		ErrWriter: &errOut,
		Commands:  []*cli.Command{cmd},
	}
	cliMu.Lock()
	defer cliMu.Unlock()
	err = app.RunContext(t.Context(), append([]string{"x"}, args...))
	return out.String(), errOut.String(), err
}

// deleteOnCleanup deletes the stream when the test ends (errors ignored: it may be gone).
func deleteOnCleanup(t *testing.T, cl *kinesis.Client, name string) {
	t.Cleanup(func() {
		_, _ = cl.DeleteStream(t.Context(), &kinesis.DeleteStreamInput{StreamName: aws.String(name)})
	})
}

// mustCreate creates the stream with the command and registers its deletion.
func mustCreate(t *testing.T, ep, name string, shards int) string {
	t.Helper()
	deleteOnCleanup(t, testClient(ep), name)
	out, _, err := runCLI(t, Command(), "kinesis", "create-stream", "--endpoint", ep, "--stream", name,
		"--shards", strconv.Itoa(shards), "--timeout", "30s")
	if err != nil {
		t.Fatalf("create-stream %s: %v", name, err)
	}
	return out
}

// putToShard puts n records with the given explicit hash key and checks they all land on
// shardID.
func putToShard(t *testing.T, cl *kinesis.Client, stream kinesisapi.Stream, hashKey, shardID string, n int) {
	t.Helper()
	for sent := 0; sent < n; {
		batch := min(500, n-sent)
		entries := make([]types.PutRecordsRequestEntry, batch)
		for i := range entries {
			entries[i] = types.PutRecordsRequestEntry{
				Data:            []byte(fmt.Sprintf("record %d", sent+i)),
				PartitionKey:    aws.String("pk"),
				ExplicitHashKey: aws.String(hashKey),
			}
		}
		out, err := cl.PutRecords(t.Context(), &kinesis.PutRecordsInput{
			StreamName: stream.Name(),
			StreamARN:  stream.ARN(),
			Records:    entries,
		})
		if err != nil {
			t.Fatalf("PutRecords: %v", err)
		}
		if f := aws.ToInt32(out.FailedRecordCount); f != 0 {
			t.Fatalf("PutRecords: %d records failed", f)
		}
		for _, r := range out.Records {
			if got := aws.ToString(r.ShardId); got != shardID {
				t.Fatalf("record with hash key %s went to %s, want %s", hashKey, got, shardID)
			}
		}
		sent += batch
	}
}

// shardRow is one parsed row of the shards table; records is -1 without --count.
type shardRow struct {
	id, parent, adjacent, state, start, end string
	records                                 int64
}

// parseShards parses the output of the shards command: the rows and the total (-1 if none).
func parseShards(t *testing.T, out string, withCount bool) ([]shardRow, int64) {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	wantHeader := []string{"SHARD_ID", "PARENT", "ADJACENT_PARENT", "STATE", "STARTING_HASH_KEY", "ENDING_HASH_KEY"}
	if withCount {
		wantHeader = append(wantHeader, "RECORDS")
	}
	if got := strings.Fields(lines[0]); strings.Join(got, " ") != strings.Join(wantHeader, " ") {
		t.Fatalf("header = %q, want %q\noutput:\n%s", lines[0], wantHeader, out)
	}
	// The columns are aligned: every row's cells start where the header's do.
	cols := regexp.MustCompile(`\S+`).FindAllStringIndex(lines[0], -1)
	var rows []shardRow
	total := int64(-1)
	for _, line := range lines[1:] {
		f := strings.Fields(line)
		if withCount && f[0] == "total" {
			if len(f) != 2 || total != -1 {
				t.Fatalf("bad total line %q", line)
			}
			total = mustInt(t, f[1])
			if idx := strings.LastIndex(line, f[1]); idx != cols[len(cols)-1][0] {
				t.Errorf("total %q starts at column %d, want %d", line, idx, cols[len(cols)-1][0])
			}
			continue
		}
		if len(f) != len(wantHeader) {
			t.Fatalf("row %q has %d cells, want %d", line, len(f), len(wantHeader))
		}
		for i, cell := range regexp.MustCompile(`\S+`).FindAllStringIndex(line, -1) {
			if cell[0] != cols[i][0] {
				t.Errorf("row %q: cell %d starts at %d, want %d (aligned with the header)", line, i, cell[0], cols[i][0])
			}
		}
		r := shardRow{id: f[0], parent: f[1], adjacent: f[2], state: f[3], start: f[4], end: f[5], records: -1}
		if withCount {
			r.records = mustInt(t, f[6])
		}
		rows = append(rows, r)
	}
	return rows, total
}

func mustInt(t *testing.T, s string) int64 {
	t.Helper()
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		t.Fatalf("not a number: %q", s)
	}
	return n
}

// shardStarts returns the starting hash key of each shard, by shard id.
func shardStarts(t *testing.T, cl *kinesis.Client, stream kinesisapi.Stream) map[string]string {
	t.Helper()
	shards, err := kinesisapi.ListShards(t.Context(), cl, stream, 0)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, sh := range shards {
		m[aws.ToString(sh.ShardId)] = aws.ToString(sh.HashKeyRange.StartingHashKey)
	}
	return m
}

func shardID(i int) string { return fmt.Sprintf("shardId-%012d", i) }

var maxHashKey = new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 128), big.NewInt(1))

func TestCreateStream(t *testing.T) {
	ep := emulatorEndpoint(t, envKinesalite)
	cases := []struct {
		name     string
		existing int // shards of a stream created first, 0 for none
		args     func(name string) []string
		want     string // regexp; %[1]s is the stream name (quoted)
		wantErr  string
		shards   int32 // open shards expected afterwards
	}{
		{
			name: "new stream",
			args: func(n string) []string {
				return []string{"kinesis", "create-stream", "--endpoint", ep, "--stream", n, "--shards", "3"}
			},
			want:   `^created stream %[1]s: ACTIVE, 3 open shards, arn:aws:kinesis:[^ ]+:stream/%[1]s\n$`,
			shards: 3,
		},
		{
			name: "flags on the kinesis command",
			args: func(n string) []string {
				return []string{"kinesis", "--endpoint", ep, "--region", "us-east-1", "create-stream", "--stream", n, "--shards", "1"}
			},
			want:   `^created stream %[1]s: ACTIVE, 1 open shard, arn:aws:kinesis:us-east-1:[^ ]+:stream/%[1]s\n$`,
			shards: 1,
		},
		{
			name:     "existing stream",
			existing: 3,
			args: func(n string) []string {
				return []string{"kinesis", "create-stream", "--endpoint", ep, "--stream", n, "--shards", "3"}
			},
			want:   `^stream %[1]s already exists: ACTIVE, 3 open shards, arn:aws:kinesis:[^ ]+:stream/%[1]s\n$`,
			shards: 3,
		},
		{
			name:     "existing stream with another shard count",
			existing: 2,
			args: func(n string) []string {
				return []string{"kinesis", "create-stream", "--endpoint", ep, "--stream", n, "--shards", "3"}
			},
			want:   `^stream %[1]s already exists: ACTIVE, 2 open shards \(left as is, not 3\), arn:\S+\n$`,
			shards: 2,
		},
		{
			name: "ARN",
			args: func(n string) []string {
				return []string{"kinesis", "create-stream", "--endpoint", ep, "--stream", "arn:aws:kinesis:us-east-1:000000000000:stream/" + n, "--shards", "1"}
			},
			wantErr: "create-stream needs a stream name, not an ARN",
		},
		{
			name: "zero shards",
			args: func(n string) []string {
				return []string{"kinesis", "create-stream", "--endpoint", ep, "--stream", n, "--shards", "0"}
			},
			wantErr: "--shards must be at least 1, got 0",
		},
		{
			name:    "no shards flag",
			args:    func(n string) []string { return []string{"kinesis", "create-stream", "--endpoint", ep, "--stream", n} },
			wantErr: `Required flag "shards" not set`,
		},
		{
			name: "unexpected argument",
			args: func(n string) []string {
				return []string{"kinesis", "create-stream", "--endpoint", ep, "--stream", n, "--shards", "1", "extra"}
			},
			wantErr: `unexpected arguments ["extra"]`,
		},
		{
			name: "endpoint without scheme",
			args: func(n string) []string {
				return []string{"kinesis", "create-stream", "--endpoint", "127.0.0.1:4567", "--stream", n, "--shards", "1"}
			},
			wantErr: `invalid endpoint "127.0.0.1:4567"`,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			name := uniqueName("create")
			cl := testClient(ep)
			deleteOnCleanup(t, cl, name)
			if tc.existing > 0 {
				mustCreate(t, ep, name, tc.existing)
			}
			out, _, err := runCLI(t, Command(), tc.args(name)...)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error = %v, want one containing %q (output %q)", err, tc.wantErr, out)
				}
				return
			}
			if err != nil {
				t.Fatalf("error = %v (output %q)", err, out)
			}
			if re := regexp.MustCompile(fmt.Sprintf(tc.want, regexp.QuoteMeta(name))); !re.MatchString(out) {
				t.Errorf("output = %q, want it to match %s", out, re)
			}
			sum, err := describe(t.Context(), cl, kinesisapi.Stream(name))
			if err != nil {
				t.Fatal(err)
			}
			if sum.StreamStatus != types.StreamStatusActive || aws.ToInt32(sum.OpenShardCount) != tc.shards {
				t.Errorf("stream is %s with %d open shards, want ACTIVE with %d", sum.StreamStatus, aws.ToInt32(sum.OpenShardCount), tc.shards)
			}
		})
	}
}

func TestShards(t *testing.T) {
	ep := emulatorEndpoint(t, envKinesalite)
	half := new(big.Int).Lsh(big.NewInt(1), 127).String()
	cases := []struct {
		name   string
		shards int
		count  bool
		// setup puts records (and reshards); it returns nothing, want says what to expect.
		setup     func(t *testing.T, cl *kinesis.Client, s kinesisapi.Stream)
		want      []shardRow // start and end are not compared when empty
		wantTotal int64
	}{
		{
			name:   "list",
			shards: 4,
			want: []shardRow{
				{id: shardID(0), parent: "-", adjacent: "-", state: "open", records: -1},
				{id: shardID(1), parent: "-", adjacent: "-", state: "open", records: -1},
				{id: shardID(2), parent: "-", adjacent: "-", state: "open", records: -1},
				{id: shardID(3), parent: "-", adjacent: "-", state: "open", records: -1},
			},
			wantTotal: -1,
		},
		{
			name:   "count per shard",
			shards: 3,
			count:  true,
			setup: func(t *testing.T, cl *kinesis.Client, s kinesisapi.Stream) {
				starts := shardStarts(t, cl, s)
				putToShard(t, cl, s, starts[shardID(0)], shardID(0), 5)
				putToShard(t, cl, s, starts[shardID(2)], shardID(2), 7)
			},
			want: []shardRow{
				{id: shardID(0), parent: "-", adjacent: "-", state: "open", records: 5},
				{id: shardID(1), parent: "-", adjacent: "-", state: "open", records: 0},
				{id: shardID(2), parent: "-", adjacent: "-", state: "open", records: 7},
			},
			wantTotal: 12,
		},
		{
			name:   "empty stream",
			shards: 2,
			count:  true,
			want: []shardRow{
				{id: shardID(0), parent: "-", adjacent: "-", state: "open", records: 0},
				{id: shardID(1), parent: "-", adjacent: "-", state: "open", records: 0},
			},
			wantTotal: 0,
		},
		{
			name:   "more records than one GetRecords call returns",
			shards: 1,
			count:  true,
			setup: func(t *testing.T, cl *kinesis.Client, s kinesisapi.Stream) {
				putToShard(t, cl, s, "0", shardID(0), getRecordsLimit+1)
			},
			want:      []shardRow{{id: shardID(0), parent: "-", adjacent: "-", state: "open", records: getRecordsLimit + 1}},
			wantTotal: getRecordsLimit + 1,
		},
		{
			name:   "split and merge",
			shards: 1,
			count:  true,
			setup: func(t *testing.T, cl *kinesis.Client, s kinesisapi.Stream) {
				putToShard(t, cl, s, "0", shardID(0), 4)
				if _, err := cl.SplitShard(t.Context(), &kinesis.SplitShardInput{
					StreamName:         s.Name(),
					ShardToSplit:       aws.String(shardID(0)),
					NewStartingHashKey: aws.String(half),
				}); err != nil {
					t.Fatalf("SplitShard: %v", err)
				}
				if _, err := waitActive(t.Context(), cl, s, 10*time.Millisecond); err != nil {
					t.Fatal(err)
				}
				putToShard(t, cl, s, "0", shardID(1), 2)
				putToShard(t, cl, s, half, shardID(2), 3)
				if _, err := cl.MergeShards(t.Context(), &kinesis.MergeShardsInput{
					StreamName:           s.Name(),
					ShardToMerge:         aws.String(shardID(1)),
					AdjacentShardToMerge: aws.String(shardID(2)),
				}); err != nil {
					t.Fatalf("MergeShards: %v", err)
				}
				if _, err := waitActive(t.Context(), cl, s, 10*time.Millisecond); err != nil {
					t.Fatal(err)
				}
				putToShard(t, cl, s, "0", shardID(3), 1)
			},
			want: []shardRow{
				{id: shardID(0), parent: "-", adjacent: "-", state: "closed", start: "0", end: maxHashKey.String(), records: 4},
				{id: shardID(1), parent: shardID(0), adjacent: "-", state: "closed", start: "0", records: 2},
				{id: shardID(2), parent: shardID(0), adjacent: "-", state: "closed", start: half, end: maxHashKey.String(), records: 3},
				{id: shardID(3), parent: shardID(1), adjacent: shardID(2), state: "open", start: "0", end: maxHashKey.String(), records: 1},
			},
			wantTotal: 10,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			name := uniqueName("shards")
			cl := testClient(ep)
			mustCreate(t, ep, name, tc.shards)
			if tc.setup != nil {
				tc.setup(t, cl, kinesisapi.Stream(name))
			}
			args := []string{"kinesis", "shards", "--endpoint", ep, "--stream", name}
			if tc.count {
				args = append(args, "--count")
			}
			out, _, err := runCLI(t, Command(), args...)
			if err != nil {
				t.Fatalf("shards: %v", err)
			}
			rows, total := parseShards(t, out, tc.count)
			if total != tc.wantTotal {
				t.Errorf("total = %d, want %d\n%s", total, tc.wantTotal, out)
			}
			if len(rows) != len(tc.want) {
				t.Fatalf("%d rows, want %d\n%s", len(rows), len(tc.want), out)
			}
			for i, want := range tc.want {
				got := rows[i]
				if want.start == "" {
					want.start = got.start
				}
				if want.end == "" {
					want.end = got.end
				}
				if got != want {
					t.Errorf("row %d = %+v, want %+v\n%s", i, got, want, out)
				}
			}
			if !tc.count {
				checkContiguous(t, rows)
			}
		})
	}
}

// checkContiguous checks that the hash key ranges of open shards cover 0..2^128-1 without gap.
func checkContiguous(t *testing.T, rows []shardRow) {
	t.Helper()
	next := big.NewInt(0)
	for _, r := range rows {
		start, ok1 := new(big.Int).SetString(r.start, 10)
		end, ok2 := new(big.Int).SetString(r.end, 10)
		if !ok1 || !ok2 || start.Cmp(next) != 0 || end.Cmp(start) < 0 {
			t.Fatalf("shard %s covers %s..%s, want it to start at %s", r.id, r.start, r.end, next)
		}
		next.Add(end, big.NewInt(1))
	}
	if next.Cmp(new(big.Int).Add(maxHashKey, big.NewInt(1))) != 0 {
		t.Fatalf("the shards end at %s, want %s", next, maxHashKey)
	}
}

func TestDeleteStream(t *testing.T) {
	ep := emulatorEndpoint(t, envKinesalite)
	cases := []struct {
		name   string
		exists bool
		onKin  bool // flags on the kinesis command
		want   string
	}{
		{name: "existing stream", exists: true, want: "deleted stream %s\n"},
		{name: "flags on the kinesis command", exists: true, onKin: true, want: "deleted stream %s\n"},
		{name: "missing stream", want: "stream %s does not exist: nothing to delete\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			name := uniqueName("delete")
			cl := testClient(ep)
			if tc.exists {
				mustCreate(t, ep, name, 2)
			}
			args := []string{"kinesis", "delete-stream", "--endpoint", ep, "--stream", name, "--timeout", "30s", "--yes"}
			if tc.onKin {
				args = []string{"kinesis", "--endpoint", ep, "delete-stream", "--stream", name, "-y"}
			}
			out, _, err := runCLI(t, Command(), args...)
			if err != nil {
				t.Fatalf("delete-stream: %v", err)
			}
			if want := fmt.Sprintf(tc.want, name); out != want {
				t.Errorf("output = %q, want %q", out, want)
			}
			if _, err := describe(t.Context(), cl, kinesisapi.Stream(name)); !kinesisapi.IsNotFound(err) {
				t.Errorf("after delete-stream, DescribeStreamSummary: %v, want ResourceNotFoundException", err)
			}
		})
	}
}

func TestMissingStream(t *testing.T) {
	ep := emulatorEndpoint(t, envKinesalite)
	cases := []struct {
		name string
		args []string
	}{
		{name: "shards", args: []string{"kinesis", "shards", "--endpoint", ep}},
		{name: "shards --count", args: []string{"kinesis", "shards", "--endpoint", ep, "--count"}},
		{name: "endpoint on the kinesis command", args: []string{"kinesis", "--endpoint", ep, "shards"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			name := uniqueName("missing")
			out, _, err := runCLI(t, Command(), append(tc.args, "--stream", name)...)
			if err == nil {
				t.Fatalf("no error; output %q", out)
			}
			if want := fmt.Sprintf("stream %s does not exist", name); !strings.HasPrefix(err.Error(), want) {
				t.Errorf("error = %q, want it to start with %q", err, want)
			}
			var rnf *types.ResourceNotFoundException
			if !errors.As(err, &rnf) {
				t.Errorf("error %v does not wrap a ResourceNotFoundException", err)
			}
			if out != "" {
				t.Errorf("output = %q, want none", out)
			}
		})
	}
}

// TestCABundle checks that a broken AWS_CA_BUNDLE does not stop the command from reaching a
// plain http endpoint, and is reported clearly with an https one.
func TestCABundle(t *testing.T) {
	badPEM := filepath.Join(t.TempDir(), "bad.pem")
	if err := os.WriteFile(badPEM, []byte("not a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(t.TempDir(), "missing.pem")
	for _, bundle := range []string{missing, badPEM} {
		t.Run(filepath.Base(bundle), func(t *testing.T) {
			t.Setenv("AWS_CA_BUNDLE", bundle)

			var warn bytes.Buffer
			_, err := newClients(t.Context(), connSettings{kinesisEndpoint: "https://127.0.0.1:1"}, &warn)
			if err == nil || !strings.Contains(err.Error(), "AWS_CA_BUNDLE="+bundle) {
				t.Errorf("https endpoint: error = %v, want one naming AWS_CA_BUNDLE=%s", err, bundle)
			}

			ep := emulatorEndpoint(t, envKinesalite)
			name := uniqueName("cabundle")
			deleteOnCleanup(t, testClient(ep), name)
			out, stderr, err := runCLI(t, Command(), "kinesis", "create-stream", "--endpoint", ep, "--stream", name, "--shards", "1")
			if err != nil {
				t.Fatalf("create-stream with AWS_CA_BUNDLE=%s: %v", bundle, err)
			}
			if !strings.HasPrefix(out, "created stream "+name) {
				t.Errorf("output = %q", out)
			}
			if !strings.Contains(stderr, "warning: ignoring the custom CA bundle AWS_CA_BUNDLE="+bundle) {
				t.Errorf("stderr = %q, want a warning about the CA bundle", stderr)
			}
		})
	}
}

// TestKinesisMock addresses the stream by ARN and pages through ListShards one shard at a time
// on kinesis-local, which (unlike kinesalite) accepts ARNs and honours MaxResults.
func TestKinesisMock(t *testing.T) {
	ep := emulatorEndpoint(t, envKinesisMock)
	name := uniqueName("mock")
	cl := testClient(ep)
	out := mustCreate(t, ep, name, 3)
	m := regexp.MustCompile(`, (arn:\S+)\n$`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no ARN in %q", out)
	}
	arn := kinesisapi.Stream(m[1])
	starts := shardStarts(t, cl, arn)
	putToShard(t, cl, arn, starts[shardID(0)], shardID(0), 3)
	putToShard(t, cl, arn, starts[shardID(1)], shardID(1), 2)

	out, _, err := runCLI(t, Command(), "kinesis", "--endpoint", ep, "shards", "--stream", string(arn), "--page-size", "1", "--count")
	if err != nil {
		t.Fatalf("shards: %v", err)
	}
	rows, total := parseShards(t, out, true)
	var got []string
	for _, r := range rows {
		got = append(got, fmt.Sprintf("%s=%d", r.id, r.records))
	}
	want := []string{shardID(0) + "=3", shardID(1) + "=2", shardID(2) + "=0"}
	if strings.Join(got, " ") != strings.Join(want, " ") || total != 5 {
		t.Errorf("counts %v total %d, want %v total 5\n%s", got, total, want, out)
	}

	out, _, err = runCLI(t, Command(), "kinesis", "delete-stream", "--endpoint", ep, "--stream", string(arn), "--yes")
	if err != nil {
		t.Fatalf("delete-stream: %v", err)
	}
	if want := "deleted stream " + string(arn) + "\n"; out != want {
		t.Errorf("output = %q, want %q", out, want)
	}
}

// TestBenthosCLI runs the command inside the Benthos CLI, as the binary does, and checks the
// exit codes.
func TestBenthosCLI(t *testing.T) {
	ep := emulatorEndpoint(t, envKinesalite)
	cases := []struct {
		name     string
		sub      string
		wantCode int
		wantErr  string
	}{
		{name: "missing stream is an error", sub: "shards", wantCode: 1, wantErr: "does not exist"},
		{name: "deleting a missing stream is fine", sub: "delete-stream", wantCode: 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			name := uniqueName("benthos")
			cliMu.Lock()
			defer cliMu.Unlock()
			code, err := service.RunCLIToCode(t.Context(),
				service.CLIOptSetArgs("benthos-kinesis", "kinesis", tc.sub, "--endpoint", ep, "--stream", name),
				service.CLIOptAddCommand(Command()),
			)
			if code != tc.wantCode {
				t.Errorf("exit code %d, want %d (error %v)", code, tc.wantCode, err)
			}
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Errorf("error = %v, want %q", err, tc.wantErr)
			}
		})
	}
}
