package verify

import (
	"fmt"
	"time"
)

// t0 is the start of every test run, in unix nanoseconds.
const t0 = int64(1_732_570_000_000_000_000)

// ms returns t0 plus m milliseconds.
func ms(m float64) int64 { return t0 + int64(m*float64(time.Millisecond)) }

// at returns ms(m) as a time.Time.
func at(m float64) time.Time { return time.Unix(0, ms(m)) }

// seqOf is the sequence number the tests give record (k, n): unique and
// increasing with n.
func seqOf(k, n int) string { return fmt.Sprintf("4959%04d%08d", k, n) }

// del is a delivery of record (k, n) by incarnation inc at ms(m).
func del(k, n int, inc string, m float64) Delivery {
	return Delivery{
		Key:         fmt.Sprintf("key-%d", k),
		N:           n,
		Shard:       fmt.Sprintf("shardId-%012d", k%2),
		Seq:         seqOf(k, n),
		At:          ms(m),
		Incarnation: inc,
	}
}

// all delivers every record of w once, by inc, key by key, one per
// millisecond from ms(start).
func all(w Written, inc string, start float64) []Delivery {
	var ds []Delivery
	m := start
	for k := 0; k < w.Keys; k++ {
		for n := 0; n < w.PerKey; n++ {
			ds = append(ds, del(k, n, inc, m))
			m++
		}
	}
	return ds
}

func ev(m float64, inc string, kind EventKind) Event {
	return Event{At: at(m), Incarnation: inc, Kind: kind}
}

func sample(m float64, shard, owner string, epoch int64, cp string) LeaseSample {
	return LeaseSample{At: at(m), Stream: "s", Shard: shard, Owner: owner, Epoch: epoch, Checkpoint: cp}
}
