package chaos

import (
	"context"
	"fmt"
	"math/big"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/benthos-kinesis/benthos-kinesis/internal/chaos/faultproxy"
	"github.com/benthos-kinesis/benthos-kinesis/internal/chaos/verify"
	"github.com/benthos-kinesis/benthos-kinesis/internal/testenv"
)

// The readers run with the input's defaults: lease_period 3.5s.
const leasePeriod = 3500 * time.Millisecond

// pick is the short value in make test, the full one under -chaos.full.
func pick[T any](short, long T) T {
	if *full {
		return long
	}
	return short
}

// records is how many records the writer writes in d at one per interval.
func records(d, interval time.Duration) int { return int(d / interval) }

// keys is the number of partition keys every scenario writes.
const keys = 64

func perKey(d, interval time.Duration) int { return max(1, records(d, interval)/keys) }

// takeOvers reports the time from each forced event to the moment every
// shard of the worker had another owner.
type takeOvers struct {
	what  string
	times []time.Duration
}

func (t *takeOvers) add(d time.Duration, ok bool) {
	if ok {
		t.times = append(t.times, d)
	}
}

func (t *takeOvers) String() string {
	if len(t.times) == 0 {
		return ""
	}
	s := slices.Clone(t.times)
	slices.Sort(s)
	return fmt.Sprintf("%s: %d measured, median %v, max %v\n", t.what, len(s), s[len(s)/2].Round(10*time.Millisecond), s[len(s)-1].Round(10*time.Millisecond))
}

func report(t *testing.T, rep verify.Report, extra string) {
	if extra != "" {
		t.Log(extra)
	}
	if err := record(t.Name(), rep, extra); err != nil && err != errNoReport {
		t.Errorf("writing the report: %v", err)
	}
}

// 1. kill -9 of a random reader every 20 s (short: 10 s), restarted 5 s
// later. Duplicates are allowed and must all come from the killed readers.
func TestChaosKill(t *testing.T) {
	attack := pick(35*time.Second, 5*time.Minute)
	every := pick(10*time.Second, 20*time.Second)
	interval := 2 * time.Millisecond
	c := newCluster(t, clusterSpec{shards: 4, keys: keys, perKey: perKey(attack, interval), writerInterval: interval})
	for range 3 {
		c.addReader()
	}
	c.startWriter()
	type kill struct {
		worker string
		at     time.Time
	}
	var kills []kill
	for end := time.Now().Add(attack); time.Now().Before(end); {
		c.sleep(every - 5*time.Second)
		rs := c.running()
		victim := rs[c.rng.IntN(len(rs))]
		k := kill{worker: c.workerID(victim.cur), at: time.Now()}
		c.kill(victim)
		kills = append(kills, k)
		c.sleep(5 * time.Second)
		c.startReader(victim)
	}
	c.waitWriter(2 * time.Minute)
	rep := c.finish(verify.Options{}, 2*time.Minute)
	tk := &takeOvers{what: "take-over after kill -9"}
	for _, k := range kills {
		d, ok := c.monitor.takeOver(k.worker, k.at)
		t.Logf("kill of worker %s at %s: taken over after %v (%v)", k.worker, k.at.Format("15:04:05.000"), d, ok)
		tk.add(d, ok)
	}
	report(t, rep, tk.String())
}

// 2. SIGSTOP of a reader for longer than the lease period, then SIGCONT:
// the zombie must stop delivering (no stale delivery after it resumes),
// its writes must be rejected, and checkpoints never move backwards.
func TestChaosZombie(t *testing.T) {
	rounds := pick(1, 3)
	interval := 2 * time.Millisecond
	c := newCluster(t, clusterSpec{shards: 4, keys: keys, perKey: perKey(time.Duration(rounds)*30*time.Second, interval), writerInterval: interval})
	a, b := c.addReader(), c.addReader()
	c.startWriter()
	tk := &takeOvers{what: "take-over of a SIGSTOPped reader"}
	for i := range rounds {
		victim := []*reader{a, b}[i%2]
		c.waitOwns(victim, 30*time.Second)
		worker := c.workerID(victim.cur)
		at := time.Now()
		c.pause(victim)
		c.sleep(leasePeriod + 4*time.Second)
		tk.add(c.monitor.takeOver(worker, at))
		c.resume(victim)
		c.sleep(10 * time.Second)
		// It resumed with shards it no longer owns: it must have noticed
		// (fenced itself, or found the leases lost) rather than carry on.
		if logEventCount(victim.cur, "fenced") == 0 && logEventCount(victim.cur, "lost") == 0 {
			t.Errorf("%s resumed after %v stopped and logged neither a fence nor a lost lease", victim.cur.id, leasePeriod+4*time.Second)
		}
	}
	c.waitWriter(2 * time.Minute)
	rep := c.finish(verify.Options{}, 2*time.Minute)
	report(t, rep, tk.String())
}

// 3. Resharding while reading, on kinesis-local: 4→8→4 shards (full: then
// a split and a merge). kinesis-local slows down with many records per
// shard, so the writer is slow.
func TestChaosReshard(t *testing.T) {
	interval := 20 * time.Millisecond
	settle := 8 * time.Second
	steps := 2
	if *full {
		steps = 4
	}
	c := newCluster(t, clusterSpec{kinesisLocal: true, shards: 4, keys: keys, perKey: perKey(time.Duration(steps+1)*settle+20*time.Second, interval), writerInterval: interval})
	for range 3 {
		c.addReader()
	}
	c.startWriter()
	ops := []struct {
		what string
		op   func(context.Context) error
	}{
		{"UpdateShardCount to 8", func(ctx context.Context) error { return updateShardCount(ctx, c, 8) }},
		{"UpdateShardCount to 4", func(ctx context.Context) error { return updateShardCount(ctx, c, 4) }},
		{"SplitShard", func(ctx context.Context) error { return splitFirstOpen(ctx, c) }},
		{"MergeShards", func(ctx context.Context) error { return mergeFirstAdjacent(ctx, c) }},
	}
	for _, o := range ops[:steps] {
		c.sleep(settle)
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		err := o.op(ctx)
		if err == nil {
			err = testenv.WaitStreamActive(ctx, c.kc, c.stream)
		}
		cancel()
		if err != nil {
			t.Fatalf("%s: %v", o.what, err)
		}
		t.Logf("%s done", o.what)
	}
	c.waitWriter(3 * time.Minute)
	rep := c.finish(verify.Options{}, 3*time.Minute)
	report(t, rep, "")
}

func updateShardCount(ctx context.Context, c *cluster, n int32) error {
	_, err := c.kc.UpdateShardCount(ctx, &kinesis.UpdateShardCountInput{
		StreamName: aws.String(c.stream), TargetShardCount: aws.Int32(n), ScalingType: types.ScalingTypeUniformScaling,
	})
	return err
}

func openShards(ctx context.Context, c *cluster) ([]types.Shard, error) {
	out, err := c.kc.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String(c.stream)})
	if err != nil {
		return nil, err
	}
	var open []types.Shard
	for _, s := range out.Shards {
		if s.SequenceNumberRange.EndingSequenceNumber == nil {
			open = append(open, s)
		}
	}
	slices.SortFunc(open, func(a, b types.Shard) int { return hashStart(a).Cmp(hashStart(b)) })
	return open, nil
}

func hashStart(s types.Shard) *big.Int {
	v, _ := new(big.Int).SetString(aws.ToString(s.HashKeyRange.StartingHashKey), 10)
	return v
}

func splitFirstOpen(ctx context.Context, c *cluster) error {
	open, err := openShards(ctx, c)
	if err != nil || len(open) == 0 {
		return fmt.Errorf("no open shard to split: %v", err)
	}
	sh := open[0]
	lo := hashStart(sh)
	hi, _ := new(big.Int).SetString(aws.ToString(sh.HashKeyRange.EndingHashKey), 10)
	mid := new(big.Int).Rsh(new(big.Int).Add(lo, hi), 1)
	_, err = c.kc.SplitShard(ctx, &kinesis.SplitShardInput{
		StreamName: aws.String(c.stream), ShardToSplit: sh.ShardId, NewStartingHashKey: aws.String(mid.Add(mid, big.NewInt(1)).String()),
	})
	return err
}

func mergeFirstAdjacent(ctx context.Context, c *cluster) error {
	open, err := openShards(ctx, c)
	if err != nil || len(open) < 2 {
		return fmt.Errorf("no two open shards to merge: %v", err)
	}
	_, err = c.kc.MergeShards(ctx, &kinesis.MergeShardsInput{
		StreamName: aws.String(c.stream), ShardToMerge: open[0].ShardId, AdjacentShardToMerge: open[1].ShardId,
	})
	return err
}

// 4. Scale out 1→3 readers and back in 3→1 with graceful stops: graceful
// hand-offs lose nothing and duplicate nothing.
func TestChaosScale(t *testing.T) {
	cycles := pick(1, 3)
	step := pick(8*time.Second, 15*time.Second)
	interval := 2 * time.Millisecond
	c := newCluster(t, clusterSpec{shards: 8, keys: keys, perKey: perKey(time.Duration(cycles)*4*step+step, interval), writerInterval: interval})
	first := c.addReader()
	c.startWriter()
	var extra []*reader
	for range cycles {
		c.waitOwns(first, 30*time.Second)
		for len(extra) < 2 {
			c.sleep(step)
			extra = append(extra, c.addReader())
		}
		for len(extra) > 0 {
			c.sleep(step)
			r := extra[len(extra)-1]
			extra = extra[:len(extra)-1]
			c.waitOwns(r, 30*time.Second)
			c.stop(r)
			// The slot's next start is a new reader slot; this one is done.
		}
	}
	c.waitWriter(2 * time.Minute)
	rep := c.finish(verify.Options{ZeroDuplicates: true}, 2*time.Minute)
	report(t, rep, "")
}

// 5. Throttling (25 % of requests), 5xx (10 %) and connection resets (3 %)
// on both services for a minute (short: 15 s), on every process, the
// writer included.
func TestChaosThrottling(t *testing.T) {
	attack := pick(15*time.Second, time.Minute)
	interval := 2 * time.Millisecond
	c := newCluster(t, clusterSpec{shards: 4, keys: keys, perKey: perKey(attack+15*time.Second, interval), writerInterval: interval})
	for range 3 {
		c.addReader()
	}
	c.startWriter()
	proxies := []*faultproxy.Proxy{c.wProxy}
	for _, r := range c.readers {
		proxies = append(proxies, r.kin, r.ddb)
	}
	c.sleep(5 * time.Second)
	for _, p := range proxies {
		p.SetFaults(faultproxy.Faults{ThrottleRate: 0.25, ServerErrorRate: 0.1, ResetRate: 0.03, Latency: 5 * time.Millisecond, Seed: c.rng.Uint64()})
	}
	c.sleep(attack)
	var injected []string
	for _, p := range proxies {
		p.SetFaults(faultproxy.Faults{})
		s := p.Stats()
		injected = append(injected, fmt.Sprintf("%d/%d/%d", s.Throttled, s.ServerErrors, s.Resets))
	}
	c.waitWriter(2 * time.Minute)
	rep := c.finish(verify.Options{}, 2*time.Minute)
	report(t, rep, "injected throttles/5xx/resets per proxy (writer, then each reader's kinesis and dynamodb): "+strings.Join(injected, " "))
}

// 6. The pipeline nacks a random 5 % of messages (auto_replay_nacks on, the
// default): every nacked record is delivered again, nothing is lost, and
// nothing is duplicated (each record is its own batch). Benthos replays a
// nacked batch while the input goes on delivering the shard's next ones,
// so per-key order holds only with one batch of a shard in the pipeline at
// a time (checkpoint_limit: 1 here, unbatched); with the default limit the
// reordering is measured and reported.
func TestChaosNacks(t *testing.T) {
	for _, tc := range []struct {
		name            string
		checkpointLimit int
	}{
		{name: "ordered", checkpointLimit: 1},
		{name: "default checkpoint_limit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := pick(15*time.Second, 90*time.Second)
			interval := 2 * time.Millisecond
			c := newCluster(t, clusterSpec{shards: 4, keys: keys, perKey: perKey(d, interval), writerInterval: interval, nackPercent: 5, checkpointLimit: tc.checkpointLimit})
			for range 2 {
				c.addReader()
			}
			c.startWriter()
			c.waitWriter(d + 2*time.Minute)
			rep := c.finish(verify.Options{ZeroDuplicates: true, AllowOutOfOrder: tc.checkpointLimit != 1}, 2*time.Minute)
			nacked := 0
			for _, p := range c.procs {
				nacked += logCount(p, `"msg":"chaos: nacked"`)
			}
			if nacked == 0 {
				t.Error("the pipeline nacked nothing: the scenario did not test replays")
			}
			report(t, rep, fmt.Sprintf("nacked (and delivered again): %d (%.1f %% of deliveries); records first delivered out of write order: %d\n",
				nacked, 100*float64(nacked)/float64(max(1, rep.Delivered)), rep.OutOfOrder))
		})
	}
}

// 7. DynamoDB unreachable from every reader for longer than the lease
// period (2×), then back: every reader fences itself, then re-takes its
// leases; nothing is lost. Then one reader's whole traffic black-holed as
// long (a network partition): the others take over its shards.
func TestChaosDynamoDBUnreachable(t *testing.T) {
	rounds := pick(1, 3)
	interval := 2 * time.Millisecond
	outage := 2 * leasePeriod
	c := newCluster(t, clusterSpec{shards: 4, keys: keys, perKey: perKey(time.Duration(rounds)*(outage+10*time.Second)+outage+10*time.Second, interval), writerInterval: interval})
	for range 3 {
		c.addReader()
	}
	c.startWriter()
	for range rounds {
		c.sleep(10 * time.Second)
		for _, r := range c.readers {
			r.ddb.Partition(true)
			c.event(r.cur.id, verify.Partitioned)
		}
		c.sleep(outage)
		for _, r := range c.readers {
			r.ddb.Partition(false)
			c.event(r.cur.id, verify.Healed)
		}
	}
	// Then one reader alone cut off from both services (a network
	// partition): the others take its shards, and it fences itself.
	c.sleep(5 * time.Second)
	cut := c.readers[0]
	worker := c.workerID(cut.cur)
	at := time.Now()
	c.partition(cut, true)
	c.sleep(outage)
	c.partition(cut, false)
	tk := &takeOvers{what: "take-over of a partitioned reader"}
	c.waitWriter(2 * time.Minute)
	for _, r := range c.readers {
		if logEventCount(r.cur, "fenced") == 0 {
			t.Errorf("%s never fenced itself during a %v DynamoDB outage", r.cur.id, outage)
		}
	}
	rep := c.finish(verify.Options{}, 2*time.Minute)
	tk.add(c.monitor.takeOver(worker, at))
	report(t, rep, tk.String())
}
