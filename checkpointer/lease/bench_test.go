package lease

import (
	"fmt"
	"testing"
	"time"
)

// BenchmarkSimulationRuns: seeded runs of TestSimulation per second (op = one run: a fleet under
// chaos, then settling).
func BenchmarkSimulationRuns(b *testing.B) {
	var simulated int64
	for i := range b.N {
		res := simulate(uint64(i), false, nil)
		if len(res.violations) > 0 {
			b.Fatalf("seed %d: %s", i, res.violations[0])
		}
		simulated += res.simTime
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "runs/s")
	b.ReportMetric(float64(simulated)/1000/b.Elapsed().Seconds(), "simulated-s/s")
}

var benchShards = 10_000

// BenchmarkSimulationLargeFleet: 16 workers started together on one stream of 10,000 shards
// (the input's default periods: lease 3.5 s, rebalance 5 s, commit 5 s, steal grace 10 s), and
// the simulated time until the fleet is at fair share with every shard read (op = one fleet).
func BenchmarkSimulationLargeFleet(b *testing.B) {
	for range b.N {
		cfg := defaultConfig()
		cfg.lease, cfg.rebalance, cfg.commit, cfg.grace = 3500, 5000, 5000, 10_000
		cfg.rateMax = 1
		w := newWorld(cfg, 1)
		w.addStream("s1", benchShards)
		for i := range 16 {
			if _, err := w.addWorker(fmt.Sprintf("w%02d", i+1), 0); err != nil {
				b.Fatal(err)
			}
		}
		start := time.Now()
		var settled int64 = -1
		for t := int64(500); t <= 300_000; t += 500 {
			w.runUntil(t)
			if ok, _ := w.stable(); ok {
				settled = t
				break
			}
		}
		if len(w.violations) > 0 {
			b.Fatal(w.violations[0])
		}
		if settled < 0 {
			_, why := w.stable()
			b.Fatalf("not at fair share after 300 s simulated: %s", why)
		}
		b.ReportMetric(float64(settled)/1000, "simulated-s-to-fair-share")
		b.ReportMetric(time.Since(start).Seconds(), "wall-s")
		b.Logf("10,000 shards, 16 workers: fair share after %s simulated (%v of wall time); %d writes, %d claims, %d steals, %d requests, %d hand-overs",
			ms(settled), time.Since(start).Round(time.Millisecond), w.stats.writes, w.stats.claims, w.stats.steals, w.stats.requests, w.stats.handovers)
	}
}
