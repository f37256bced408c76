package chaos

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/benthos-kinesis/benthos-kinesis/checkpointer"
	"github.com/benthos-kinesis/benthos-kinesis/internal/chaos/faultproxy"
	"github.com/benthos-kinesis/benthos-kinesis/internal/chaos/verify"
	"github.com/benthos-kinesis/benthos-kinesis/internal/testenv"
)

// Bounds of the harness's own waits: none of them stands in for
// synchronisation, each ends a wait for an observable state that did not
// come.
const (
	exitWithin  = 60 * time.Second // a SIGTERMed process exits (shutdown_timeout is 30s)
	killWithin  = 10 * time.Second // a SIGKILLed process is reaped
	logWithin   = 30 * time.Second // a process logs that it launched, or its worker id
	sampleEvery = 200 * time.Millisecond
)

// cluster is one scenario's world: a stream and a lease table, a writer and
// readers (each process behind its own proxies, so that one process's
// traffic can be attacked alone), the lease table monitor and the log of
// what the harness did.
type cluster struct {
	t             *testing.T
	dir           string
	kinesisTarget string          // the Kinesis emulator's endpoint
	kc            *kinesis.Client // direct to it, for resharding
	stream, table string
	spec          clusterSpec

	mu      sync.Mutex
	events  []verify.Event
	readers []*reader
	procs   []*proc // every incarnation of every process, in start order
	writer  *proc
	wProxy  *faultproxy.Proxy
	rng     *rand.Rand
	monitor *leaseMonitor
}

// clusterSpec is what a scenario chooses of its cluster.
type clusterSpec struct {
	kinesisLocal bool  // kinesis-local instead of kinesalite (resharding)
	shards       int32 // of the stream at the start
	keys, perKey int   // the writer writes keys × perKey records
	// writerInterval paces the writer (one record per interval), so that
	// the attacks happen while records are written.
	writerInterval time.Duration
	nackPercent    int // the readers' pipeline nacks this share of messages
	// checkpointLimit is the readers' checkpoint_limit; 0 keeps the default.
	checkpointLimit int
	// batching is the input's batching policy of each reader slot, in YAML
	// ("{ count: 100 }"), taken in turn; empty: no batching.
	batching []string
	// pollLimit is the readers' poll.limit (records per GetRecords); 0 keeps the default.
	pollLimit int
	// backlog makes the readers' Kinesis proxies report a backlog in every
	// GetRecords answer with records (faultproxy.Faults.Backlog): kinesalite
	// always says caught up, and a caught-up reader flushes its partial batch.
	backlog time.Duration
	// ackURL, when set, sends every delivered message also to this HTTP
	// server (http_client output, many in flight), and acknowledges it only
	// once the server answers: the test holds, slows or reorders the acks.
	ackURL string
}

// readerFaults are the faults a reader's Kinesis proxy has outside the
// scenario's attacks.
func (c *cluster) readerFaults() faultproxy.Faults {
	return faultproxy.Faults{Backlog: c.spec.backlog}
}

// reader is a reader slot: its proxies outlive its incarnations.
type reader struct {
	name     string
	batching string // the input's batching policy (YAML), "" for none
	kin, ddb *faultproxy.Proxy
	cur      *proc // the running incarnation, nil when none
	count    int   // incarnations so far
}

// proc is one incarnation of a process.
type proc struct {
	id       string // "r2.1": reader r2, first incarnation; "w" for the writer
	cmd      *exec.Cmd
	out, log string
	started  time.Time
	exited   chan struct{}
	err      error // valid once exited is closed
	workerID string
}

func newCluster(t *testing.T, spec clusterSpec) *cluster {
	t.Helper()
	c := &cluster{t: t, dir: t.TempDir(), spec: spec, rng: rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))}
	if spec.kinesisLocal {
		c.kinesisTarget = testenv.KinesisMockEndpoint(t)
		c.kc = testenv.KinesisMock(t)
	} else {
		c.kinesisTarget = testenv.KinesaliteEndpoint(t)
		c.kc = testenv.Kinesalite(t)
	}
	ddb := testenv.DynamoDB(t)
	c.stream = testenv.CreateStream(t, c.kc, spec.shards)
	c.table = testenv.CreateTable(t, ddb)
	tbl, err := checkpointer.New(ddb, c.table, "chaos-monitor")
	if err != nil {
		t.Fatal(err)
	}
	c.monitor = startLeaseMonitor(tbl, c.stream)
	t.Cleanup(c.cleanup)
	return c
}

// cleanup kills whatever still runs and closes the proxies. A scenario
// that went well has stopped everything already.
func (c *cluster) cleanup() {
	c.monitor.stop()
	c.mu.Lock()
	procs := slices.Clone(c.procs)
	c.mu.Unlock()
	for _, p := range procs {
		select {
		case <-p.exited:
		default:
			_ = p.cmd.Process.Signal(syscall.SIGCONT)
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
	}
	for _, r := range c.readers {
		_ = r.kin.Close()
		_ = r.ddb.Close()
	}
	if c.wProxy != nil {
		_ = c.wProxy.Close()
	}
	if c.t.Failed() {
		c.dumpLogs()
	}
}

// dumpLogs shows the end of every process's log when a scenario fails.
func (c *cluster) dumpLogs() {
	for _, p := range c.procs {
		b, _ := os.ReadFile(p.log)
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		if len(lines) > 40 {
			lines = lines[len(lines)-40:]
		}
		c.t.Logf("--- last lines of %s's log (%s):\n%s", p.id, p.log, strings.Join(lines, "\n"))
	}
}

func (c *cluster) event(id string, kind verify.EventKind) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.events = append(c.events, verify.Event{At: time.Now(), Incarnation: id, Kind: kind})
}

// addReader makes a reader slot with its own proxies and starts it.
func (c *cluster) addReader() *reader {
	c.t.Helper()
	kin, err := faultproxy.New(faultproxy.Kinesis, c.kinesisTarget)
	if err != nil {
		c.t.Fatal(err)
	}
	ddb, err := faultproxy.New(faultproxy.DynamoDB, testenv.DynamoDBEndpoint(c.t))
	if err != nil {
		_ = kin.Close()
		c.t.Fatal(err)
	}
	// Before the start: its first answers must already report the backlog.
	kin.SetFaults(c.readerFaults())
	c.mu.Lock()
	r := &reader{name: fmt.Sprintf("r%d", len(c.readers)+1), kin: kin, ddb: ddb}
	if n := len(c.spec.batching); n > 0 {
		r.batching = c.spec.batching[len(c.readers)%n]
	}
	c.readers = append(c.readers, r)
	c.mu.Unlock()
	c.startReader(r)
	return r
}

// startReader starts the next incarnation of r.
func (c *cluster) startReader(r *reader) {
	c.t.Helper()
	r.count++
	id := fmt.Sprintf("%s.%d", r.name, r.count)
	p := c.start(id, c.readerYAML(id, filepath.Join(c.dir, id+".jsonl"), r))
	r.cur = p
}

// start runs the binary with the config and records it.
func (c *cluster) start(id, yaml string) *proc {
	c.t.Helper()
	cfg := filepath.Join(c.dir, id+".yaml")
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		c.t.Fatal(err)
	}
	p := &proc{id: id, out: filepath.Join(c.dir, id+".jsonl"), log: filepath.Join(c.dir, id+".log"), exited: make(chan struct{})}
	logf, err := os.Create(p.log)
	if err != nil {
		c.t.Fatal(err)
	}
	p.cmd = exec.Command(binary, "run", cfg)
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	if err := p.cmd.Start(); err != nil {
		_ = logf.Close()
		c.t.Fatalf("start %s: %v", id, err)
	}
	p.started = time.Now()
	c.event(id, verify.Started)
	c.mu.Lock()
	c.procs = append(c.procs, p)
	c.mu.Unlock()
	go func() {
		p.err = p.cmd.Wait()
		_ = logf.Close()
		c.event(id, verify.Exited)
		close(p.exited)
	}()
	return p
}

// kill is kill -9 of r's running incarnation.
func (c *cluster) kill(r *reader) {
	c.t.Helper()
	p := r.cur
	c.event(p.id, verify.Killed)
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		c.t.Fatalf("kill %s: %v", p.id, err)
	}
	select {
	case <-p.exited:
	case <-time.After(killWithin):
		c.t.Fatalf("%s not reaped %v after SIGKILL", p.id, killWithin)
	}
	r.cur = nil
}

// stop stops r gracefully (SIGTERM) and checks that it exits cleanly.
func (c *cluster) stop(r *reader) {
	c.t.Helper()
	c.terminate(r.cur)
	r.cur = nil
}

func (c *cluster) terminate(p *proc) {
	c.t.Helper()
	// Benthos handles SIGTERM once its stream is built (tens of ms after
	// start); one that comes earlier kills the process by default, which
	// says nothing about the connector. Wait until it has launched.
	c.waitLog(p, "launch", func() bool { return logCount(p, "Launching a benthos-kinesis instance") > 0 })
	c.event(p.id, verify.Terminated)
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		c.t.Fatalf("SIGTERM %s: %v", p.id, err)
	}
	select {
	case <-p.exited:
	case <-time.After(exitWithin):
		c.t.Fatalf("%s did not exit within %v of SIGTERM", p.id, exitWithin)
	}
	if p.err != nil {
		c.t.Errorf("%s did not exit cleanly after SIGTERM: %v", p.id, p.err)
	}
}

// pause is SIGSTOP; resume is SIGCONT.
func (c *cluster) pause(r *reader) {
	c.t.Helper()
	c.event(r.cur.id, verify.Stopped)
	if err := r.cur.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		c.t.Fatalf("SIGSTOP %s: %v", r.cur.id, err)
	}
}

func (c *cluster) resume(r *reader) {
	c.t.Helper()
	if err := r.cur.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		c.t.Fatalf("SIGCONT %s: %v", r.cur.id, err)
	}
	c.event(r.cur.id, verify.Continued)
}

// partition black-holes all of r's traffic (both services) until heal.
func (c *cluster) partition(r *reader, on bool) {
	r.kin.Partition(on)
	r.ddb.Partition(on)
	kind := verify.Partitioned
	if !on {
		kind = verify.Healed
	}
	c.event(r.cur.id, kind)
}

// running returns the readers with a running incarnation.
func (c *cluster) running() []*reader {
	c.mu.Lock()
	defer c.mu.Unlock()
	var rs []*reader
	for _, r := range c.readers {
		if r.cur != nil {
			rs = append(rs, r)
		}
	}
	return rs
}

// startWriter starts the writer: keys × perKey records through the
// project's output, paced by writerInterval.
func (c *cluster) startWriter() {
	c.t.Helper()
	p, err := faultproxy.New(faultproxy.Kinesis, c.kinesisTarget)
	if err != nil {
		c.t.Fatal(err)
	}
	c.wProxy = p
	c.writer = c.start("w", c.writerYAML())
}

// waitWriter waits (bounded) for the writer to have written everything: it
// exits 0 only once every record was acknowledged by Kinesis.
func (c *cluster) waitWriter(within time.Duration) {
	c.t.Helper()
	select {
	case <-c.writer.exited:
	case <-time.After(within):
		c.t.Fatalf("the writer did not finish within %v", within)
	}
	if c.writer.err != nil {
		c.t.Fatalf("the writer failed: %v", c.writer.err)
	}
}

// written is what the writer wrote.
func (c *cluster) written() verify.Written {
	return verify.Written{Keys: c.spec.keys, PerKey: c.spec.perKey}
}

func (c *cluster) outputs() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var paths []string
	for _, p := range c.procs {
		// A reader killed before its first delivery has no file.
		if _, err := os.Stat(p.out); p.id != "w" && err == nil {
			paths = append(paths, p.out)
		}
	}
	return paths
}

// waitAllRead polls the readers' files until every written record was
// delivered, or the bound passes (an error).
func (c *cluster) waitAllRead(within time.Duration) {
	c.t.Helper()
	deadline := time.Now().Add(within)
	want := c.spec.keys * c.spec.perKey
	for {
		ds, _, err := verify.ReadDeliveryFiles(c.outputs()...)
		if err != nil {
			c.t.Fatal(err)
		}
		got := verify.Distinct(ds)
		if got >= want {
			return
		}
		if time.Now().After(deadline) {
			// Not fatal: the verifier, run next, says which are missing.
			c.t.Errorf("only %d of %d records read %v after the writer finished", got, want, within)
			return
		}
		time.Sleep(500 * time.Millisecond) // polling files written by other processes
	}
}

// workerID reads p's worker id from its log (bounded wait).
func (c *cluster) workerID(p *proc) string {
	c.t.Helper()
	if p.workerID == "" {
		c.waitLog(p, "log its worker id", func() bool {
			p.workerID = grepWorkerID(p.log)
			return p.workerID != ""
		})
	}
	return p.workerID
}

// waitLog polls p's log until cond holds, failing the test if p exits
// first or logWithin passes.
func (c *cluster) waitLog(p *proc, what string, cond func() bool) {
	c.t.Helper()
	deadline := time.Now().Add(logWithin)
	for !cond() {
		if time.Now().After(deadline) {
			c.t.Fatalf("%s did not %s within %v", p.id, what, logWithin)
		}
		select {
		case <-p.exited:
			c.t.Fatalf("%s exited (%v) while waiting for it to %s", p.id, p.err, what)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

var workerIDPattern = regexp.MustCompile(`as worker ([^,\s"]+)`)

func grepWorkerID(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	if m := workerIDPattern.FindSubmatch(b); m != nil {
		return string(m[1])
	}
	return ""
}

// waitOwns waits (bounded) until r's worker owns at least one shard.
func (c *cluster) waitOwns(r *reader, within time.Duration) {
	c.t.Helper()
	c.waitOwned(r, "at least 1", func(n int) bool { return n > 0 }, within)
}

// waitOwnsN waits (bounded) until r's worker owns exactly n shards.
func (c *cluster) waitOwnsN(r *reader, n int, within time.Duration) {
	c.t.Helper()
	c.waitOwned(r, fmt.Sprint(n), func(got int) bool { return got == n }, within)
}

func (c *cluster) waitOwned(r *reader, want string, ok func(int) bool, within time.Duration) {
	c.t.Helper()
	id := c.workerID(r.cur)
	deadline := time.Now().Add(within)
	for got := c.monitor.ownedBy(id); !ok(got); got = c.monitor.ownedBy(id) {
		if time.Now().After(deadline) {
			c.t.Fatalf("%s (worker %s) owns %d shards after %v, want %s", r.cur.id, id, got, within, want)
		}
		time.Sleep(sampleEvery)
	}
}

// sleep is the scenario's schedule (attack every 20 s and so on), not a
// synchronisation; it ends early if the test is over.
func (c *cluster) sleep(d time.Duration) {
	select {
	case <-time.After(d):
	case <-c.t.Context().Done():
	}
}

// logEvents derives the events the processes logged themselves: a fence
// (no heartbeat) and a lost lease explain a duplicate as much as a kill.
func (c *cluster) logEvents() []verify.Event {
	var evs []verify.Event
	for _, p := range c.procs {
		f, err := os.Open(p.log)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Bytes()
			if !leaseLostLog(line) {
				continue
			}
			var l struct {
				Time string `json:"time"`
			}
			if json.Unmarshal(line, &l) != nil {
				continue
			}
			at, err := time.Parse(time.RFC3339Nano, l.Time)
			if err != nil {
				continue
			}
			// Benthos logs whole seconds: the event happened before the
			// end of that second, and it explains what was delivered
			// before it, so take the end.
			evs = append(evs, verify.Event{At: at.Add(time.Second - time.Nanosecond), Incarnation: p.id, Kind: verify.LeaseLost})
		}
		_ = f.Close()
	}
	return evs
}

// leaseLostLog: the input's log lines that mean it stopped delivering a shard without a
// graceful hand-off: the lease changes (structured key "event", plugin/input/coordinator.go)
// "fenced" (no heartbeat) and "lost" (another worker took it).
func leaseLostLog(line []byte) bool {
	switch leaseEvent(line) {
	case "fenced", "lost":
		return true
	}
	return false
}

// leaseEvent is the "event" key of a lease change's log line; "" for any other line.
func leaseEvent(line []byte) string {
	if !strings.Contains(string(line), `"event"`) {
		return ""
	}
	var l struct {
		Event string `json:"event"`
	}
	if json.Unmarshal(line, &l) != nil {
		return ""
	}
	return l.Event
}

// logEventCount counts the lease changes of kind event in p's log.
func logEventCount(p *proc, event string) int {
	f, err := os.Open(p.log)
	if err != nil {
		return 0
	}
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		if leaseEvent(sc.Bytes()) == event {
			n++
		}
	}
	return n
}

// logCount counts the lines of p's log containing s.
func logCount(p *proc, s string) int {
	b, _ := os.ReadFile(p.log)
	return strings.Count(string(b), s)
}

// finish waits for every record to be read, stops every reader gracefully,
// and verifies.
func (c *cluster) finish(opts verify.Options, readWithin time.Duration) verify.Report {
	c.t.Helper()
	c.waitAllRead(readWithin)
	for _, r := range c.running() {
		c.stop(r)
	}
	c.monitor.stop()
	ds, files, err := verify.ReadDeliveryFiles(c.outputs()...)
	if err != nil {
		c.t.Fatal(err)
	}
	opts.Files = files
	c.mu.Lock()
	events := append(slices.Clone(c.events), c.logEvents()...)
	c.mu.Unlock()
	rep := verify.Check(c.written(), ds, events, c.monitor.samples(), opts)
	c.t.Logf("verifier:\n%s", rep.String())
	if err := rep.Err(); err != nil {
		c.t.Error(err)
	}
	return rep
}

// leaseMonitor samples the lease table straight from dynalite (no proxy)
// for the verifier's "checkpoints never regress" and the take-over times.
type leaseMonitor struct {
	cancel context.CancelFunc
	done   chan struct{}

	mu   sync.Mutex
	all  []verify.LeaseSample
	last map[string]checkpointer.Lease // by shard
}

func startLeaseMonitor(tbl *checkpointer.Table, stream string) *leaseMonitor {
	ctx, cancel := context.WithCancel(context.Background())
	m := &leaseMonitor{cancel: cancel, done: make(chan struct{}), last: map[string]checkpointer.Lease{}}
	go func() {
		defer close(m.done)
		tick := time.NewTicker(sampleEvery)
		defer tick.Stop()
		for {
			leases, err := tbl.Leases(ctx, stream)
			if err == nil {
				m.record(time.Now(), leases)
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	return m
}

func (m *leaseMonitor) record(at time.Time, leases []checkpointer.Lease) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, l := range leases {
		if !l.Exists {
			continue
		}
		m.last[l.Shard] = l
		m.all = append(m.all, verify.LeaseSample{At: at, Stream: l.Stream, Shard: l.Shard, Owner: l.ClientID, Epoch: l.Epoch, Checkpoint: l.SequenceNumber})
	}
}

func (m *leaseMonitor) stop() {
	m.cancel()
	<-m.done
}

func (m *leaseMonitor) samples() []verify.LeaseSample {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.all)
}

// ownedBy counts the unfinished shards the worker owns as last sampled.
func (m *leaseMonitor) ownedBy(worker string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for _, l := range m.last {
		if l.ClientID == worker && !l.Finished {
			n++
		}
	}
	return n
}

// takeOver measures, from the samples, how long after `at` every shard the
// worker owned then had another owner. ok is false if it owned none or
// some were never taken.
func (m *leaseMonitor) takeOver(worker string, at time.Time) (time.Duration, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	owned := map[string]bool{}
	for _, s := range m.all {
		if s.At.After(at) {
			break
		}
		owned[s.Shard] = s.Owner == worker
	}
	pending := map[string]bool{}
	for sh, o := range owned {
		if o {
			pending[sh] = true
		}
	}
	if len(pending) == 0 {
		return 0, false
	}
	for _, s := range m.all {
		if !s.At.After(at) || !pending[s.Shard] {
			continue
		}
		if s.Owner != worker && s.Owner != "" {
			delete(pending, s.Shard)
			if len(pending) == 0 {
				return s.At.Sub(at), true
			}
		}
	}
	return 0, false
}

var errNoReport = errors.New("no report path")

// record appends a scenario's figures to the -chaos.report file.
func record(name string, rep verify.Report, extra string) error {
	if *reportPath == "" {
		return errNoReport
	}
	f, err := os.OpenFile(*reportPath, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = fmt.Fprintf(f, "### %s\n\n```text\n%s\n%s```\n\n", name, strings.TrimRight(rep.String(), "\n"), extra)
	return err
}
