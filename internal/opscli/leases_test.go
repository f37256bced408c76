package opscli

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/benthos-kinesis/benthos-kinesis/checkpointer"
	"github.com/benthos-kinesis/benthos-kinesis/internal/kinesisapi"
	"github.com/benthos-kinesis/benthos-kinesis/internal/testenv"
)

// mustJSON decodes out into v.
func mustJSON(t *testing.T, out string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(out), v); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, out)
	}
}

type listOut struct {
	Leases  []leaseJSON  `json:"leases"`
	Workers []workerJSON `json:"workers"`
}

// TestLeasesList: per shard the state, the owner, its worker name and whether it is alive, the
// epoch, the checkpoint; then the workers, judged from their heartbeats, with their names.
func TestLeasesList(t *testing.T) {
	t.Parallel()
	e := newLenv(t, 3)
	// alive-worker has a given name; dead-worker the default one, "<hostname>:<pid>".
	alive, dead := e.worker("alive-worker", checkpointer.WithWorkerName("pod-a:17")), e.worker("dead-worker")
	deadName := checkpointer.DefaultWorkerName()
	e.beating(alive)
	if err := dead.Heartbeat(t.Context(), 7, []string{e.stream}); err != nil {
		t.Fatal(err)
	}
	l := e.claim(alive, shardID(0))
	sub := uint64(3)
	if _, err := alive.Checkpoint(t.Context(), e.stream, shardID(0), l.Epoch, "4242", &sub); err != nil {
		t.Fatal(err)
	}
	e.claim(dead, shardID(1))
	builtin := e.worker("builtin-client") // an owner without a worker row
	e.claim(builtin, shardID(2))

	var got listOut
	if err := e.runJSON(&got, "leases", "list", "--table", e.table, "--stream", e.stream); err != nil {
		t.Fatal(err)
	}
	type want struct {
		owner      string
		name       string
		alive, row bool
		seq        string
		sub        *uint64
		state      string
		epoch      int64
	}
	wants := map[string]want{
		shardID(0): {owner: "alive-worker", name: "pod-a:17", alive: true, row: true, seq: "4242", sub: &sub, state: "open", epoch: 1},
		shardID(1): {owner: "dead-worker", name: deadName, row: true, state: "open", epoch: 1},
		shardID(2): {owner: "builtin-client", state: "open", epoch: 1},
	}
	if len(got.Leases) != 3 {
		t.Fatalf("%d leases, want 3: %+v", len(got.Leases), got.Leases)
	}
	for _, g := range got.Leases {
		w := wants[g.Shard]
		if g.Owner != w.owner || g.OwnerName != w.name || g.OwnerAlive == nil || *g.OwnerAlive != w.alive || *g.OwnerHasRow != w.row ||
			g.SequenceNumber != w.seq || g.State != w.state || g.Epoch == nil || *g.Epoch != w.epoch || g.Stream != e.stream ||
			(w.sub == nil) != (g.SubSequence == nil) || (w.sub != nil && *w.sub != *g.SubSequence) {
			t.Errorf("lease %s = %+v, want %+v", g.Shard, g, w)
		}
	}
	workers := map[string]workerJSON{}
	for _, w := range got.Workers {
		workers[w.ID] = w
	}
	if w := workers["alive-worker"]; !w.Alive || !w.HasRow || w.Shards != 1 || w.Name != "pod-a:17" {
		t.Errorf("alive-worker = %+v", w)
	}
	if w := workers["dead-worker"]; w.Alive || !w.HasRow || w.Heartbeat != 7 || w.Shards != 1 || w.Name != deadName {
		t.Errorf("dead-worker = %+v", w)
	}
	if w := workers["builtin-client"]; w.Alive || w.HasRow || w.Name != "" {
		t.Errorf("builtin-client = %+v", w)
	}

	// The table output says the same.
	out, _, err := e.run(strings.NewReader(""), false, "leases", "list", "--table", e.table, "--stream", e.stream)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{
		e.stream + " " + shardID(0) + " open alive-worker pod-a:17 yes 1 4242 3 - - -",
		e.stream + " " + shardID(1) + " open dead-worker " + deadName + " no 1 - - - - -",
		e.stream + " " + shardID(2) + " open builtin-client - no(no-worker-row) 1 - - - - -",
		"WORKER NAME ALIVE HEARTBEAT SHARDS STREAMS STARTED",
	} {
		if !hasLine(out, line) {
			t.Errorf("table output lacks %q:\n%s", line, out)
		}
	}
	for _, prefix := range []string{"alive-worker pod-a:17 yes ", "dead-worker " + deadName + " no(still-", "builtin-client - no(still-"} {
		if !hasLinePrefix(out, prefix) {
			t.Errorf("workers table lacks a line starting %q:\n%s", prefix, out)
		}
	}
}

// hasLinePrefix says whether out has a line whose fields start with those of prefix.
func hasLinePrefix(out, prefix string) bool {
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(strings.Join(strings.Fields(line), " "), prefix) {
			return true
		}
	}
	return false
}

// hasLine says whether out has a line whose fields are those of want.
func hasLine(out, want string) bool {
	for _, line := range strings.Split(out, "\n") {
		if strings.Join(strings.Fields(line), " ") == want {
			return true
		}
	}
	return false
}

// TestLeasesErrors: missing table, missing stream, malformed arguments.
func TestLeasesErrors(t *testing.T) {
	t.Parallel()
	e := newLenv(t, 1)
	cases := []struct {
		name string
		args []string
		want string
	}{
		{name: "missing table", args: []string{"leases", "list", "--table", "no-such-table-" + e.table, "--stream", e.stream}, want: "does not exist (check --table"},
		{name: "missing stream", args: []string{"leases", "list", "--table", e.table, "--stream", e.stream + "-nope"}, want: "stream " + e.stream + "-nope does not exist"},
		{name: "no --table", args: []string{"leases", "list", "--stream", e.stream}, want: "--table is required"},
		{name: "no --stream", args: []string{"leases", "list", "--table", e.table}, want: "--stream is required"},
		{name: "bad format", args: []string{"leases", "list", "--table", e.table, "--stream", e.stream, "--format", "yaml"}, want: "--format must be table or json"},
		{name: "reset without --to", args: []string{"leases", "reset", "--table", e.table, "--stream", e.stream}, want: "--to is required"},
		{name: "reset --to nonsense", args: []string{"leases", "reset", "--table", e.table, "--stream", e.stream, "--to", "yesterday"}, want: "want oldest, latest, timestamp=RFC3339 or sequence=N"},
		{name: "reset --to bad time", args: []string{"leases", "reset", "--table", e.table, "--stream", e.stream, "--to", "timestamp=09:00"}, want: "must be RFC 3339"},
		{name: "reset --to future", args: []string{"leases", "reset", "--table", e.table, "--stream", e.stream, "--to", "timestamp=2999-01-01T00:00:00Z"}, want: "in the future"},
		{name: "reset --to bad sequence", args: []string{"leases", "reset", "--table", e.table, "--stream", e.stream, "--to", "sequence=12ab", "--shard", shardID(0)}, want: "want sequence=N"},
		{name: "sequence without shard", args: []string{"leases", "reset", "--table", e.table, "--stream", e.stream, "--to", "sequence=1"}, want: "needs exactly one --shard"},
		{name: "sequence not of the shard", args: []string{"leases", "reset", "--table", e.table, "--stream", e.stream, "--to", "sequence=1", "--shard", shardID(0), "--dry-run"}, want: "sequence number 1 of shard"},
		{name: "unknown shard", args: []string{"leases", "reset", "--table", e.table, "--stream", e.stream, "--to", "oldest", "--shard", shardID(5)}, want: "is not a shard of stream"},
		{name: "reset missing stream", args: []string{"leases", "reset", "--table", e.table, "--stream", e.stream + "-nope", "--to", "oldest"}, want: "does not exist"},
		{name: "release without shard", args: []string{"leases", "release", "--table", e.table, "--stream", e.stream}, want: "--shard is required"},
		{name: "import without --from-kcl", args: []string{"leases", "import", "--table", e.table, "--stream", e.stream, "--kcl-table", "k"}, want: "--from-kcl is required"},
		{name: "import missing KCL table", args: []string{"leases", "import", "--from-kcl", "--table", e.table, "--stream", e.stream, "--kcl-table", "no-such-kcl-" + e.table}, want: "KCL lease table"},
		{name: "extra arguments", args: []string{"leases", "list", "--table", e.table, "--stream", e.stream, "extra"}, want: "unexpected arguments"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := e.run(strings.NewReader(""), false, tc.args...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error = %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// TestNoCredentials: without credentials the tool says so and calls nothing, even with an
// emulator's endpoint (it used to send made-up ones).
func TestNoCredentials(t *testing.T) {
	t.Setenv(envAccessKeyID, "")
	t.Setenv(envSecretAccessKey, "")
	ep := testenv.DynamoDBEndpoint(t)
	_, _, err := runCLI(t, Command(), "kinesis", "--dynamodb-endpoint", ep, "--kinesis-endpoint", ep, "leases", "list", "--table", "t", "--stream", "s")
	if err == nil || !strings.Contains(err.Error(), "no AWS credentials found") || !strings.Contains(err.Error(), "AWS_ACCESS_KEY_ID") {
		t.Fatalf("error = %v, want one saying that no credentials were found and what to set", err)
	}
}

// TestDeprecatedEndpointVariables: KINESIS_ENDPOINT still works for one release, with a warning;
// the SDK's AWS_ENDPOINT_URL_KINESIS works without one and wins.
func TestDeprecatedEndpointVariables(t *testing.T) {
	ep := emulatorEndpoint(t, envKinesalite)
	name := uniqueName("deprecated")
	mustCreate(t, ep, name, 1)
	cases := []struct {
		name, old, std string
		warn           bool
	}{
		{name: "old variable", old: ep, warn: true},
		{name: "SDK variable", std: ep},
		{name: "SDK variable wins", old: "http://127.0.0.1:1", std: ep},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(envDeprecatedKin, tc.old)
			t.Setenv(envKinesisURL, tc.std)
			out, stderr, err := runCLI(t, Command(), "kinesis", "shards", "--stream", name)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(out, shardID(0)) {
				t.Errorf("output = %q", out)
			}
			if got := strings.Contains(stderr, "KINESIS_ENDPOINT is deprecated"); got != tc.warn {
				t.Errorf("warning %v, want %v: stderr %q", got, tc.warn, stderr)
			}
		})
	}
}

// TestDeleteStreamConfirmation: delete-stream asks on a terminal and refuses without --yes
// otherwise.
func TestDeleteStreamConfirmation(t *testing.T) {
	ep := emulatorEndpoint(t, envKinesalite)
	cases := []struct {
		name     string
		terminal bool
		answer   string
		yes      bool
		deleted  bool
		wantErr  string
	}{
		{name: "not a terminal", wantErr: "stdin is not a terminal"},
		{name: "not a terminal, --yes", yes: true, deleted: true},
		{name: "terminal, yes", terminal: true, answer: "y\n", deleted: true},
		{name: "terminal, no", terminal: true, answer: "n\n", wantErr: "not confirmed"},
		{name: "terminal, no answer", terminal: true, wantErr: "stdin ended without an answer"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			name := uniqueName("confirm")
			mustCreate(t, ep, name, 1)
			o := defaultOptions()
			o.stdin, o.isTerminal = strings.NewReader(tc.answer), func() bool { return tc.terminal }
			args := []string{"kinesis", "delete-stream", "--endpoint", ep, "--stream", name}
			if tc.yes {
				args = append(args, "--yes")
			}
			_, _, err := runCLI(t, newCommand(o), args...)
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Errorf("error = %v, want %q", err, tc.wantErr)
			}
			_, derr := describe(t.Context(), testClient(ep), kinesisapi.Stream(name))
			if gone := derr != nil; gone != tc.deleted {
				t.Errorf("deleted = %v (%v), want %v", gone, derr, tc.deleted)
			}
		})
	}
}

// TestJSONOutput: create-stream, shards and delete-stream print JSON with --format json.
func TestJSONOutput(t *testing.T) {
	ep := emulatorEndpoint(t, envKinesalite)
	name := uniqueName("json")
	deleteOnCleanup(t, testClient(ep), name)
	var created streamJSON
	out, _, err := runCLI(t, Command(), "kinesis", "--format", "json", "create-stream", "--endpoint", ep, "--stream", name, "--shards", "2")
	if err != nil {
		t.Fatal(err)
	}
	mustJSON(t, out, &created)
	if created.Stream != name || created.Created == nil || !*created.Created || *created.OpenShards != 2 || created.Status != "ACTIVE" {
		t.Errorf("create-stream JSON = %+v", created)
	}
	var shards struct {
		Shards []shardJSON `json:"shards"`
		Total  *int64      `json:"total_records"`
	}
	out, _, err = runCLI(t, Command(), "kinesis", "shards", "--endpoint", ep, "--stream", name, "--count", "--format", "json")
	if err != nil {
		t.Fatal(err)
	}
	mustJSON(t, out, &shards)
	if len(shards.Shards) != 2 || shards.Shards[1].ShardID != shardID(1) || shards.Shards[0].State != "open" ||
		shards.Total == nil || *shards.Total != 0 || shards.Shards[0].Records == nil {
		t.Errorf("shards JSON = %+v", shards)
	}
	var deleted streamJSON
	out, _, err = runCLI(t, Command(), "kinesis", "delete-stream", "--endpoint", ep, "--stream", name, "--format", "json", "--yes")
	if err != nil {
		t.Fatal(err)
	}
	mustJSON(t, out, &deleted)
	if deleted.Deleted == nil || !*deleted.Deleted || !deleted.Existed {
		t.Errorf("delete-stream JSON = %+v", deleted)
	}
}

// TestPlaceFencesTheOwner: the write reset makes under a live owner (--force) bumps the epoch,
// so the owner's checkpoint at its old epoch fails and cannot overwrite the new position.
func TestPlaceFencesTheOwner(t *testing.T) {
	t.Parallel()
	e := newLenv(t, 1)
	owner := e.worker("owner")
	l := e.claim(owner, shardID(0))
	if _, err := owner.Checkpoint(t.Context(), e.stream, shardID(0), l.Epoch, "100", nil); err != nil {
		t.Fatal(err)
	}
	observed := e.row(shardID(0))
	// The owner checkpoints again after the tool read the row: a forced write still goes.
	if _, err := owner.Checkpoint(t.Context(), e.stream, shardID(0), l.Epoch, "200", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := e.worker("tool").Place(t.Context(), observed, checkpointer.Placement{SequenceNumber: "150"}); !errors.Is(err, checkpointer.ErrClaimConflict) {
		t.Fatalf("unforced write after a checkpoint: %v, want ErrClaimConflict", err)
	}
	w, err := e.worker("tool").Place(t.Context(), observed, checkpointer.Placement{SequenceNumber: "150", KeepOwner: true, IgnoreCheckpoint: true})
	if err != nil {
		t.Fatal(err)
	}
	if w.ClientID != "owner" || w.Epoch != l.Epoch+1 || w.SequenceNumber != "150" {
		t.Fatalf("row = %s", w)
	}
	if _, err := owner.Checkpoint(t.Context(), e.stream, shardID(0), l.Epoch, "300", nil); !errors.Is(err, checkpointer.ErrLeaseLost) {
		t.Fatalf("the owner's checkpoint at its old epoch: %v, want ErrLeaseLost", err)
	}
	if got := e.row(shardID(0)); got.SequenceNumber != "150" {
		t.Errorf("checkpoint = %s, want 150", got.SequenceNumber)
	}
}

// A worker of a fleet with a longer lease_period than --lease-period beats less often than the
// tool's own period allows: its row says its lease period, and the tool judges it with that. It
// beats once now and once 4 s later (its heartbeat period is a third of 20 s); judged with the
// --lease-period of the test (1 s), it would be dead long before its second beat.
func TestLeasesListJudgesWithTheRowsLeasePeriod(t *testing.T) {
	t.Parallel()
	e := newLenv(t, 1)
	slow := e.worker("slow-worker", checkpointer.WithLeasePeriod(20*time.Second))
	if err := slow.Heartbeat(t.Context(), 1, []string{e.stream}); err != nil {
		t.Fatal(err)
	}
	second := time.AfterFunc(4*time.Second, func() {
		if err := slow.Heartbeat(context.Background(), 2, []string{e.stream}); err != nil {
			t.Error(err)
		}
	})
	t.Cleanup(func() { second.Stop() })
	e.claim(slow, shardID(0))

	var got listOut
	if err := e.runJSON(&got, "leases", "list", "--table", e.table, "--stream", e.stream); err != nil {
		t.Fatal(err)
	}
	if len(got.Leases) != 1 || got.Leases[0].OwnerAlive == nil || !*got.Leases[0].OwnerAlive {
		t.Fatalf("leases %+v: slow-worker should be judged alive", got.Leases)
	}
}
