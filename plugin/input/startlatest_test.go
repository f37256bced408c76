package input

import (
	"testing"
	"time"

	"github.com/benthos-kinesis/benthos-kinesis/internal/testenv"
)

// With start_from_oldest: false a shard starts at its tip, but only once: a
// worker that takes the shard before any checkpoint starts where the first
// owner started, not at the tip of its own start, so the records written
// while the shard changed hands are read.
func TestIntegrationStartAtTipOnlyOnce(t *testing.T) {
	kc := testenv.Kinesalite(t)
	stream := testenv.CreateStream(t, kc, 1)
	table := testenv.CreateTable(t, testenv.DynamoDB(t))
	putRecords(t, kc, stream, 0, 50) // before any reader: not wanted
	yaml := workerYAML(t, stream, table) + "start_from_oldest: false\n"
	got := newReceived()

	a := startWorker(t, "a", yaml, got)
	waitFor(t, 30*time.Second, "a to own the shard", func() bool { return a.owned() == 1 })
	a.stop(t) // releases the shard with no checkpoint: nothing was read
	putRecords(t, kc, stream, 50, 150)
	startWorker(t, "b", yaml, got)
	waitFor(t, 30*time.Second, "the 100 records written after a started", func() bool { d, _ := got.snapshot(); return d == 100 })
	got.mu.Lock()
	defer got.mu.Unlock()
	for n := range got.counts {
		if n < 50 {
			t.Fatalf("record %d, written before the first reader started, was read", n)
		}
	}
}
