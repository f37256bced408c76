package output

import (
	"fmt"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func admitAll(*outRecord, time.Time) (bool, time.Duration) { return true, 0 }

func records(n, size int) []outRecord {
	recs := make([]outRecord, n)
	for i := range recs {
		recs[i] = outRecord{partitionKey: fmt.Sprintf("k%d", i), size: size, index: i}
	}
	return recs
}

func allPending(recs []outRecord) []int {
	p := make([]int, len(recs))
	for i := range p {
		p[i] = i
	}
	return p
}

func TestPackRequestLimits(t *testing.T) {
	const mib = 1 << 20
	cases := []struct {
		name      string
		recs      []outRecord
		wantFirst int // records in the first request
	}{
		{"500 records fit", records(500, 10), 500},
		{"501st record waits", records(501, 10), 500},
		{"5 records of exactly 1 MiB fill 5 MiB", records(5, mib), 5},
		{"6th MiB waits", records(6, mib), 5},
		{"one byte over 5 MiB waits", append(records(4, mib), outRecord{partitionKey: "x", size: mib + 1}), 4},
		{"small records after a big one still count", append(records(5, mib-1), records(10, 1)...), 10},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req, wait := packRequest(c.recs, allPending(c.recs), t0, false, admitAll, nil, nil)
			if len(req) != c.wantFirst || wait != 0 {
				t.Fatalf("request of %d records (wait %v), want %d", len(req), wait, c.wantFirst)
			}
			bytes := 0
			for j, i := range req {
				if i != j {
					t.Fatalf("request[%d] = record %d, want batch order", j, i)
				}
				bytes += c.recs[i].size
			}
			if bytes > maxRequestBytes {
				t.Fatalf("request of %d bytes", bytes)
			}
		})
	}
}

func TestPackRequestPartitionKeyCounts(t *testing.T) {
	// size is data plus key: 5 records whose data alone fit 5 MiB, but not with keys.
	recs := records(5, 1<<20)
	for i := range recs {
		recs[i].size = 1<<20 + len(recs[i].partitionKey)
	}
	req, _ := packRequest(recs, allPending(recs), t0, false, admitAll, nil, nil)
	if len(req) != 4 {
		t.Fatalf("request of %d records, want 4 (keys count towards 5 MiB)", len(req))
	}
}

func TestPackRequestBackoffAndLimiter(t *testing.T) {
	recs := records(4, 10)
	recs[0].notBefore = t0.Add(300 * time.Millisecond)
	recs[1].shard = &shardState{id: "hot"}
	admit := func(r *outRecord, _ time.Time) (bool, time.Duration) {
		if r.shard != nil && r.shard.id == "hot" {
			return false, 40 * time.Millisecond
		}
		return true, 0
	}
	req, wait := packRequest(recs, allPending(recs), t0, false, admit, nil, nil)
	if fmt.Sprint(req) != "[2 3]" || wait != 0 {
		t.Fatalf("request %v wait %v, want [2 3] at once", req, wait)
	}
	req, wait = packRequest(recs, []int{0, 1}, t0, false, admit, nil, nil)
	if len(req) != 0 || wait != 40*time.Millisecond {
		t.Fatalf("request %v wait %v, want none and 40ms", req, wait)
	}
	req, wait = packRequest(recs, []int{0}, t0, false, admit, nil, nil)
	if len(req) != 0 || wait != 300*time.Millisecond {
		t.Fatalf("request %v wait %v, want none and 300ms", req, wait)
	}
}

func TestPackRequestOrderPerKey(t *testing.T) {
	recs := records(6, 10)
	for i, k := range []string{"A", "B", "A", "C", "B", "A"} {
		recs[i].partitionKey = k
	}
	seen := map[string]struct{}{}
	req, _ := packRequest(recs, allPending(recs), t0, true, admitAll, nil, seen)
	if fmt.Sprint(req) != "[0 1 3]" {
		t.Fatalf("request %v, want the first record of each key: [0 1 3]", req)
	}
	// A's first record is backing off: no later A may overtake it.
	recs[0].notBefore = t0.Add(time.Second)
	req, wait := packRequest(recs, []int{0, 2, 4, 5}, t0, true, admitAll, nil, seen)
	if fmt.Sprint(req) != "[4]" || wait != 0 {
		t.Fatalf("request %v wait %v, want [4]", req, wait)
	}
	// Without the option, later records of A go ahead.
	req, _ = packRequest(recs, []int{0, 2, 4, 5}, t0, false, admitAll, nil, nil)
	if fmt.Sprint(req) != "[2 4 5]" {
		t.Fatalf("request %v, want [2 4 5]", req)
	}
}

// A record over the request budget (max_record_size allows 10 MiB) never
// shares a request and never blocks the records after it: it is returned
// alone, in its place in batch order, for PutRecord.
func TestPackRequestRecordOverBudgetGoesAlone(t *testing.T) {
	const mib = 1 << 20
	recs := records(4, 10)
	recs[1].size = 6 * mib
	recs[3].size = maxRequestBytes // exactly the budget: a request like any other
	var got []string
	pending := allPending(recs)
	for len(pending) > 0 {
		req, wait := packRequest(recs, pending, t0, false, admitAll, nil, nil)
		if len(req) == 0 {
			t.Fatalf("nothing to send (wait %v) with %v pending", wait, pending)
		}
		got = append(got, fmt.Sprintf("%v/%v", req, sendsAlone(recs, req)))
		pending = pending[len(req):]
	}
	if fmt.Sprint(got) != "[[0]/false [1]/true [2]/false [3]/false]" {
		t.Fatalf("requests %v, want [0], then [1] alone, then [2], then [3]", got)
	}

	// Backing off or refused by its shard, it lets the others go.
	recs[1].notBefore = t0.Add(time.Second)
	if req, _ := packRequest(recs, []int{1, 2}, t0, false, admitAll, nil, nil); fmt.Sprint(req) != "[2]" {
		t.Fatalf("request %v, want [2] while the big record backs off", req)
	}
	recs[1].notBefore = time.Time{}
	recs[1].shard = &shardState{id: "hot"}
	admit := func(r *outRecord, _ time.Time) (bool, time.Duration) { return r.shard == nil, 40 * time.Millisecond }
	if req, _ := packRequest(recs, []int{1, 2}, t0, false, admit, nil, nil); fmt.Sprint(req) != "[2]" {
		t.Fatalf("request %v, want [2] while the big record's shard is at its limit", req)
	}
}
