package ack_test

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/benthos-kinesis/benthos-kinesis/checkpointer/ack"
)

// BenchmarkDeliverAck measures one Deliver plus one Ack (and a Checkpoint and Committable
// query per window), with window batches in flight acknowledged in random order. Positions are
// real-length sequence numbers parsed beforehand, as the reader has them from GetRecords.
func BenchmarkDeliverAck(b *testing.B) {
	for _, window := range []int{1, 16, 256, 4096} {
		b.Run(fmt.Sprintf("window=%d", window), func(b *testing.B) {
			r := rand.New(rand.NewPCG(1, 2))
			positions := make([]ack.Position, 1<<16)
			for i := range positions {
				positions[i] = seqPos(b, i+1)
			}
			// A few random permutations of the window, used in turn.
			perms := make([][]int, 8)
			for i := range perms {
				perms[i] = r.Perm(window)
			}
			ids := make([]ack.BatchID, window)
			tr := ack.New()
			next, round := 0, 0
			b.ReportAllocs()
			b.ResetTimer()
			for done := 0; done < b.N; {
				n := min(window, b.N-done)
				if next+n > len(positions) {
					tr.Reset() // the positions wrap around: start over
					next = 0
				}
				for i := 0; i < n; i++ {
					id, err := tr.Deliver(positions[next], 1)
					if err != nil {
						b.Fatal(err)
					}
					next++
					ids[i] = id
				}
				for _, k := range perms[round%len(perms)] {
					if k < n {
						tr.Ack(ids[k])
					}
				}
				round++
				tr.Checkpoint()
				if p, ok := tr.Committable(); ok {
					tr.Committed(p)
				}
				done += n
			}
		})
	}
}

func BenchmarkPositionCompare(b *testing.B) {
	x, y := seqPos(b, 1), seqPos(b, 2)
	b.ReportAllocs()
	var sink int
	for b.Loop() {
		sink += x.Compare(y)
	}
	_ = sink
}
