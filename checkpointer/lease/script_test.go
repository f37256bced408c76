package lease

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Scenario scripts (testdata/*.txt), in the manner of etcd raft's data-driven tests: each file
// opens with what it proves, then one command per line, each followed by the output it must
// print:
//
//	# what this scenario proves
//	worker add w1 w2
//	tick 10s
//	----
//	   0.0s w1 starts
//	   ...
//	<blank line>
//
// A command that prints nothing has no "----" block. Run with -rewrite to write the actual
// output into the files (then read the diff). Whatever the expected output, a script fails on
// any invariant violation (the checks of world_test.go run at every step) that it does not
// accept with the command "violations".
//
// Commands (durations as Go durations: 500ms, 12s):
//
//	seed N                          the world's random seed (first command only; default 1)
//	config key=value ...            lease rebalance commit grace work ackmax latency dispatch
//	                                retention restart (durations), moves limit (ints),
//	                                readerr (a probability)
//	shards STREAM N                 a stream with N open shards shardId-000000000000...
//	builtin STREAM SHARD OWNER [CKPT]  a row written by the built-in input: no epoch, no worker row
//	worker add ID... [drift=PPM]    start workers now
//	tick DURATION                   run the world; prints what happened
//	crash ID                        the process dies
//	stop ID                         graceful shutdown: release everything, remove the worker row
//	fail STREAM DURATION            the stream's ListShards and GetRecords fail (it was deleted)
//	pause ID DURATION               the process freezes (its clock runs on)
//	cut ID DURATION                 every call to the table fails for a while (readers go on)
//	lose ID heartbeat|read|write|answer N  the next N such calls lost (answer: applied, answer lost)
//	split STREAM SHARD              close SHARD, two children appear
//	merge STREAM SHARD1 SHARD2      close both, one child appears
//	owners                          the table: owner, epoch, flags per listed shard, and the loads
//	phases ID                       the shards ID's machine holds: phase and epoch
//	view ID                         how ID judges every worker it has seen
//	stable                          whether the fleet is at rest (see world.stable)
//	violations                      print the invariant violations so far, and accept them

var rewrite = flag.Bool("rewrite", false, "rewrite the expected output of the scenario scripts in testdata/")

func TestScenarios(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no scenario in testdata/")
	}
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".txt"), func(t *testing.T) { runScript(t, f) })
	}
}

type chunk struct {
	text     string   // a comment or a blank line, kept as is
	cmd      string   // or a command
	line     int      // its line number
	want     []string // expected output
	hadBlock bool
}

func parseScript(path string) ([]chunk, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	var chunks []chunk
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		if s := strings.TrimSpace(l); s == "" || strings.HasPrefix(s, "#") {
			chunks = append(chunks, chunk{text: l, line: i + 1})
			continue
		}
		if l == "----" {
			return nil, fmt.Errorf("%s:%d: output block without a command", path, i+1)
		}
		c := chunk{cmd: strings.TrimSpace(l), line: i + 1}
		if i+1 < len(lines) && lines[i+1] == "----" {
			c.hadBlock = true
			i += 2
			for ; i < len(lines) && lines[i] != ""; i++ {
				c.want = append(c.want, lines[i])
			}
		}
		chunks = append(chunks, c)
	}
	return chunks, nil
}

func runScript(t *testing.T, path string) {
	chunks, err := parseScript(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(chunks) == 0 || !strings.HasPrefix(strings.TrimSpace(chunks[0].text), "#") {
		t.Errorf("%s: a scenario opens with a comment saying what it proves", path)
	}
	s := &script{w: newScriptWorld(1, defaultConfig())}
	var out strings.Builder
	for i := range chunks {
		c := &chunks[i]
		if c.cmd == "" {
			out.WriteString(c.text + "\n")
			continue
		}
		got, err := s.run(c.cmd)
		if err != nil {
			t.Fatalf("%s:%d: %s: %v", path, c.line, c.cmd, err)
		}
		out.WriteString(c.cmd + "\n")
		if len(got) > 0 {
			out.WriteString("----\n" + strings.Join(got, "\n") + "\n")
		}
		// The blank line that ends a block: the file's own when one follows.
		if (len(got) > 0 || c.hadBlock) && (i+1 == len(chunks) || strings.TrimSpace(chunks[i+1].text) != "" || chunks[i+1].cmd != "") {
			out.WriteString("\n")
		}
		if !*rewrite && !slices.Equal(got, c.want) {
			t.Errorf("%s:%d: %s\n--- want\n%s\n--- got\n%s", path, c.line, c.cmd, strings.Join(c.want, "\n"), strings.Join(got, "\n"))
		}
	}
	for _, v := range s.w.violations {
		t.Errorf("%s: invariant violated: %s", path, v)
	}
	if *rewrite {
		text := strings.TrimRight(out.String(), "\n") + "\n"
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

type script struct {
	w       *world
	started bool
}

func newScriptWorld(seed uint64, cfg simConfig) *world {
	w := newWorld(cfg, seed)
	w.logging = true
	return w
}

func parseMS(s string) (int64, error) {
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, err
	}
	return d.Milliseconds(), nil
}

// run runs one command and returns what it prints: the world's log, then its own output.
func (s *script) run(cmd string) ([]string, error) {
	f := strings.Fields(cmd)
	w := s.w
	args := f[1:]
	need := func(n int) error {
		if len(args) < n {
			return fmt.Errorf("%s needs %d arguments", f[0], n)
		}
		return nil
	}
	workerNamed := func(id string) (*worker, error) {
		if k := w.byID[id]; k != nil {
			return k, nil
		}
		return nil, fmt.Errorf("no worker %s", id)
	}
	var out []string
	var err error
	switch f[0] {
	case "seed":
		if s.started {
			return nil, fmt.Errorf("seed must come first")
		}
		if err = need(1); err == nil {
			var n uint64
			if n, err = strconv.ParseUint(args[0], 10, 64); err == nil {
				s.w = newScriptWorld(n, w.cfg)
			}
		}
	case "config":
		if len(w.workers) > 0 {
			return nil, fmt.Errorf("config must come before the first worker")
		}
		for _, kv := range args {
			k, v, _ := strings.Cut(kv, "=")
			if err = setConfig(&w.cfg, k, v); err != nil {
				break
			}
		}
	case "shards":
		if err = need(2); err == nil {
			var n int
			if n, err = strconv.Atoi(args[1]); err == nil {
				w.addStream(args[0], n)
			}
		}
	case "builtin":
		if err = need(3); err == nil {
			var ckpt int64
			if len(args) > 3 {
				ckpt, err = strconv.ParseInt(args[3], 10, 64)
			}
			if w.shards[Key{args[0], args[1]}] == nil {
				err = fmt.Errorf("no shard %s/%s", args[0], args[1])
			}
			if err == nil {
				w.builtinRow(Key{args[0], args[1]}, args[2], ckpt)
			}
		}
	case "worker":
		if len(args) < 2 || args[0] != "add" {
			return nil, fmt.Errorf("worker add ID... [drift=PPM]")
		}
		var drift int64
		ids := args[1:]
		if last := ids[len(ids)-1]; strings.HasPrefix(last, "drift=") {
			ids = ids[:len(ids)-1]
			drift, err = strconv.ParseInt(strings.TrimPrefix(last, "drift="), 10, 64)
		}
		for _, id := range ids {
			if err == nil {
				_, err = w.addWorker(id, drift)
			}
		}
	case "tick":
		if err = need(1); err == nil {
			var d int64
			if d, err = parseMS(args[0]); err == nil {
				w.runUntil(w.now + d)
			}
		}
	case "crash":
		if err = need(1); err == nil {
			err = w.crash(args[0])
		}
	case "pause", "cut":
		if err = need(2); err == nil {
			var d int64
			if d, err = parseMS(args[1]); err == nil {
				if f[0] == "pause" {
					err = w.pause(args[0], d)
				} else {
					err = w.cut(args[0], d)
				}
			}
		}
	case "lose":
		if err = need(3); err == nil {
			var k *worker
			if k, err = workerNamed(args[0]); err != nil {
				break
			}
			var n int
			n, err = strconv.Atoi(args[2])
			switch {
			case !slices.Contains([]string{"heartbeat", "read", "write", "answer"}, args[1]):
				err = fmt.Errorf("lose what? %s", args[1])
			case err == nil:
				k.lose[args[1]] += n
			}
		}
	case "stop":
		if err = need(1); err == nil {
			err = w.stop(args[0])
		}
	case "fail":
		if err = need(2); err == nil {
			var d int64
			if d, err = parseMS(args[1]); err == nil {
				err = w.failStream(args[0], d)
			}
		}
	case "split":
		if err = need(2); err == nil {
			err = w.split(args[0], args[1])
		}
	case "merge":
		if err = need(3); err == nil {
			err = w.merge(args[0], args[1], args[2])
		}
	case "owners":
		out = s.owners()
	case "phases":
		if err = need(1); err == nil {
			var k *worker
			if k, err = workerNamed(args[0]); err == nil {
				for _, key := range k.m.Keys() {
					ph, e := k.m.Phase(key)
					out = append(out, fmt.Sprintf("%s %s epoch %d", key, ph, e))
				}
				if len(out) == 0 {
					out = append(out, "nothing held")
				}
				if k.m.Fenced() {
					out = append(out, "fenced")
				}
			}
		}
	case "view":
		if err = need(1); err == nil {
			out, err = s.view(args[0])
		}
	case "violations":
		out = append(out, w.violations...)
		if len(out) == 0 {
			out = append(out, "none")
		}
		w.violations = nil
	case "stable":
		if ok, why := w.stable(); ok {
			out = append(out, "stable")
		} else {
			out = append(out, "not stable: "+why)
		}
	default:
		err = fmt.Errorf("unknown command %q", f[0])
	}
	s.started = true
	if err != nil {
		return nil, err
	}
	out = append(s.w.log, out...)
	s.w.log = nil
	return out, nil
}

func setConfig(c *simConfig, k, v string) error {
	durations := map[string]*int64{
		"lease": &c.lease, "rebalance": &c.rebalance, "commit": &c.commit, "grace": &c.grace, "work": &c.work,
		"ackmax": &c.ackMax, "latency": &c.latency, "dispatch": &c.dispatch, "retention": &c.retention,
		"restart": &c.restartMin,
	}
	var err error
	switch {
	case durations[k] != nil:
		*durations[k], err = parseMS(v)
	case k == "moves":
		c.maxMoves, err = strconv.Atoi(v)
	case k == "limit":
		c.limit, err = strconv.ParseInt(v, 10, 64)
	case k == "readerr":
		c.readErr, err = strconv.ParseFloat(v, 64)
	default:
		err = fmt.Errorf("unknown setting %q", k)
	}
	return err
}

// owners prints every listed shard's row and the loads of the running workers.
func (s *script) owners() []string {
	w := s.w
	var out []string
	n := 0
	load := map[string]int{}
	for _, key := range w.order {
		sh := w.shards[key]
		if !w.listed(sh) {
			continue
		}
		var r row
		if p := w.rows[key]; p != nil {
			r = *p
		}
		line := fmt.Sprintf("%s %s epoch %d, checkpoint %d", key, orNone(r.owner), r.epoch, r.ckpt)
		if r.finished {
			line = fmt.Sprintf("%s finished epoch %d, checkpoint %d", key, r.epoch, r.ckpt)
		}
		var flags []string
		if sh.closedAt >= 0 {
			flags = append(flags, "closed")
		}
		if len(sh.parents) > 0 {
			flags = append(flags, "parents "+strings.Join(sh.parents, ","))
		}
		if r.handoffTo != "" {
			flags = append(flags, "hand-off to "+r.handoffTo)
		}
		if w.readable(sh) {
			n++
			load[r.owner]++
		} else if !r.finished {
			flags = append(flags, "not readable")
		}
		if len(flags) > 0 {
			line += " (" + strings.Join(flags, ", ") + ")"
		}
		out = append(out, line)
	}
	run := w.running()
	var loads []string
	for _, k := range run {
		loads = append(loads, fmt.Sprintf("%s=%d", k.id, load[k.id]))
	}
	summary := fmt.Sprintf("loads: %s; %d readable", strings.Join(loads, " "), n)
	if len(run) > 0 {
		summary += fmt.Sprintf(", fair %d..%d", n/len(run), (n+len(run)-1)/len(run))
	}
	return append(out, summary)
}

// view prints how a worker judges the others, as of its last read of the worker rows.
func (s *script) view(id string) ([]string, error) {
	k := s.w.byID[id]
	if k == nil {
		return nil, fmt.Errorf("no worker %s", id)
	}
	l := k.m.live
	var out []string
	ids := make([]string, 0, len(l.seen))
	for o := range l.seen {
		ids = append(ids, o)
	}
	slices.Sort(ids)
	for _, o := range ids {
		if o == k.id {
			continue
		}
		sg := l.seen[o]
		age := time.Duration(l.at - sg.since).Milliseconds()
		state := "alive"
		if !l.alive(o) {
			state = "dead"
		}
		out = append(out, fmt.Sprintf("%s %s: heartbeat %d unchanged for %s", o, state, sg.counter, ms(age)))
	}
	if len(out) == 0 {
		out = append(out, "nobody seen")
	}
	return out, nil
}
