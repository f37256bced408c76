package balance

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"
)

// The deterministic simulation: thousands of seeded runs of a fleet (world_test.go) under
// chaos (joins, crashes, pauses longer than the lease period, restarts, splits and merges,
// lost requests, lost answers, lost lease reads, drifting clocks), then a quiet phase in which
// the fleet must settle at fair share and stay there. Every invariant is checked at every step;
// a failure names the seed to replay with its log:
//
//	go test ./checkpointer/balance -run TestSimulation -sim.seed=N -v
//
// More runs: -sim.runs=N or BALANCE_SIM_RUNS=N.

var (
	simRuns = flag.Int("sim.runs", 0, "seeded runs of TestSimulation (0: $BALANCE_SIM_RUNS, else 2000)")
	simSeed = flag.Int64("sim.seed", -1, "run only this seed of TestSimulation and log its events")
)

const defaultSimRuns = 2000

func simulationRuns() int {
	if *simRuns > 0 {
		return *simRuns
	}
	if n, err := strconv.Atoi(os.Getenv("BALANCE_SIM_RUNS")); err == nil && n > 0 {
		return n
	}
	return defaultSimRuns
}

type simResult struct {
	stats      simStats
	violations []string
	settle     int64 // from the end of the chaos to a stable fleet
	simTime    int64
	log        []string
	shape      string
}

const (
	quietMax = 180_000 // the fleet must be stable this long after the chaos ends
	holdFor  = 15_000  // and then stay still this long
)

func simulate(seed uint64, logging bool) simResult {
	w := newWorld(defaultConfig(), seed)
	w.logging = logging
	r := rand.New(rand.NewPCG(seed, 0xc4a05))
	w.cfg.maxMoves = 1 + r.IntN(4)
	if r.IntN(2) == 0 {
		w.cfg.lossReq, w.cfg.lossAns, w.cfg.lossRead = r.Float64()*0.05, r.Float64()*0.05, r.Float64()*0.05
	}
	drift := func() int64 { return r.Int64N(40_001) - 20_000 } // ±2%
	for i := range 1 + r.IntN(3) {
		w.addStream(fmt.Sprintf("s%d", i+1), 1+r.IntN(6))
	}
	if r.IntN(4) == 0 { // a table written by the built-in input: owners without worker rows
		for _, key := range w.order {
			if r.IntN(2) == 0 {
				w.builtinRow(key, fmt.Sprintf("builtin-%d", r.IntN(2)), 0)
			}
		}
	}
	ids := 0
	join := func() {
		ids++
		if _, err := w.addWorker(fmt.Sprintf("w%d", ids), drift()); err != nil {
			panic(err)
		}
	}
	for range 1 + r.IntN(4) {
		join()
	}
	res := simResult{shape: fmt.Sprintf("%d streams, %d shards, %d workers, max moves %d, loss %.3f/%.3f/%.3f",
		len(w.streams), len(w.order), len(w.workers), w.cfg.maxMoves, w.cfg.lossReq, w.cfg.lossAns, w.cfg.lossRead)}

	chaosEnd := 30_000 + r.Int64N(60_000)
	events := make([]int64, r.IntN(10))
	for i := range events {
		events[i] = 2000 + r.Int64N(chaosEnd-2000)
	}
	slicesSort(events)
	for _, at := range events {
		w.runUntil(at)
		var up []*worker // running, not paused
		for _, k := range w.workers {
			if k.running() {
				up = append(up, k)
			}
		}
		pick := func() *worker { return up[r.IntN(len(up))] }
		switch kind := r.IntN(7); {
		case kind == 0 || len(up) == 0:
			join()
		case kind == 1 && len(up) > 1:
			_ = w.crash(pick().id)
		case kind == 2:
			_ = w.pause(pick().id, 1000+r.Int64N(4000), r.IntN(2) == 0)
		case kind == 3:
			_ = w.pause(pick().id, w.cfg.lease+1000+r.Int64N(10_000), r.IntN(2) == 0)
		case kind == 4:
			_ = w.crash(pick().id)
			join()
		case kind == 5 || kind == 6:
			stream := w.streams[r.IntN(len(w.streams))]
			var open []string
			for _, key := range w.order {
				if sh := w.shards[key]; key.stream == stream && w.listed(sh) && sh.closedAt < 0 {
					open = append(open, key.id)
				}
			}
			if kind == 5 || len(open) < 2 {
				_, _ = w.split(stream, open[r.IntN(len(open))])
			} else {
				i := r.IntN(len(open) - 1)
				_, _ = w.merge(stream, open[i], open[i+1])
			}
		}
	}
	w.runUntil(chaosEnd)
	w.cfg.lossReq, w.cfg.lossAns, w.cfg.lossRead = 0, 0, 0
	if countIf(w.workers, func(k *worker) bool { return !k.crashed }) == 0 {
		join()
	}
	why := ""
	for t := chaosEnd; ; t += 500 {
		w.runUntil(t)
		var ok bool
		if ok, why = w.stable(); ok {
			res.settle = t - chaosEnd
			break
		}
		if t-chaosEnd > quietMax {
			w.violate("not stable %s after the chaos: %s", ms(quietMax), why)
			break
		}
	}
	before := w.epochsNow()
	w.runUntil(w.now + holdFor)
	if ok, why := w.stable(); !ok || before != w.epochsNow() {
		w.violate("the stable fleet moved (%s)", why)
	}
	res.stats, res.violations, res.simTime, res.log = w.stats, w.violations, w.now, w.log
	return res
}

func slicesSort(s []int64) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

func TestSimulation(t *testing.T) {
	if *simSeed >= 0 {
		res := simulate(uint64(*simSeed), true)
		t.Log(res.shape)
		for _, l := range res.log {
			t.Log(l)
		}
		for _, v := range res.violations {
			t.Error(v)
		}
		return
	}
	runs := simulationRuns()
	const chunks = 8
	var (
		mu          sync.Mutex
		total       simStats
		worstSettle int64
		settleSum   int64
		simTime     int64
		failed      int
	)
	start := time.Now()
	t.Run("seeds", func(t *testing.T) {
		for c := range chunks {
			t.Run(strconv.Itoa(c), func(t *testing.T) {
				t.Parallel()
				for seed := c; seed < runs; seed += chunks {
					res := simulate(uint64(seed), false)
					if len(res.violations) > 0 {
						t.Errorf("seed %d (%s): %d violations, the first: %s\n\treplay: go test ./checkpointer/balance -run TestSimulation -sim.seed=%d -v",
							seed, res.shape, len(res.violations), res.violations[0], seed)
					}
					mu.Lock()
					total.add(res.stats)
					worstSettle = max(worstSettle, res.settle)
					settleSum += res.settle
					simTime += res.simTime
					if len(res.violations) > 0 {
						failed++
					}
					mu.Unlock()
				}
			})
		}
	})
	s := total
	t.Logf("%d runs (%d failed) in %v: %s simulated, %d events, %d deliveries (%d records)",
		runs, failed, time.Since(start).Round(time.Millisecond), time.Duration(simTime)*time.Millisecond, s.events, s.deliveries, s.records)
	t.Logf("chaos: %d joins, %d crashes, %d pauses (%d longer than the lease), %d splits, %d merges; %d requests lost, %d answers lost, %d lease reads lost",
		s.joins, s.crashes, s.pauses, s.longPauses, s.splits, s.merges, s.lostRequests, s.lostAnswers, s.lostRd)
	t.Logf("protocol: %d writes (%d rejected), %d claims, %d steals, %d requests, %d hand-overs, %d forced, %d finished, %d leases lost, %d adopted, %d fences, %d zombie writes rejected, %d deliveries in a forced hand-off's window",
		s.writes, s.rejected, s.claims, s.steals, s.requests, s.handovers, s.forces, s.finishes, s.lost, s.adopted, s.fences, s.zombieRejected, s.forcedOverlaps)
	t.Logf("settled %s after the chaos on average, %s at worst (bound %s)",
		ms(settleSum/int64(max(runs, 1))), ms(worstSettle), ms(quietMax))
}
