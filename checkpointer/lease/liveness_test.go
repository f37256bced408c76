package lease

import (
	"testing"
	"time"

	"github.com/benthos-kinesis/benthos-kinesis/checkpointer"
)

// Found by the fault suite (internal/chaos, kill -9 every 10 s): a dead worker's shard waited
// 21 s for a new reader instead of about 7. Once a worker had judged the owner dead, an
// observer removed the dead worker's row (two lease periods after its last beat), and this
// worker then saw an owner without a row: the grace period of an owner never seen, one more
// lease period. A worker judged dead must stay dead when its row goes.
func TestLivenessDeadWorkerStaysDeadWhenItsRowIsRemoved(t *testing.T) {
	const lease = 6 * time.Second
	l := newLiveness("self", lease, lease/3)
	rows := func(ids ...string) []checkpointer.WorkerRow {
		var out []checkpointer.WorkerRow
		for _, id := range ids {
			out = append(out, checkpointer.WorkerRow{ID: id, Heartbeat: 1})
		}
		return out
	}
	now := time.Duration(0)
	l.observe(now, now, rows("self", "other"))
	if alive, grace := l.judge("other"); !alive || grace {
		t.Fatalf("other just beat: alive %v grace %v", alive, grace)
	}
	now += lease + time.Second // other's counter has not moved since
	l.observe(now, now, rows("self", "other"))
	if alive, grace := l.judge("other"); alive || grace {
		t.Fatalf("other still for a lease period: alive %v grace %v, want dead", alive, grace)
	}
	now += time.Second // another observer removed the dead worker's row
	l.observe(now, now, rows("self"))
	if alive, grace := l.judge("other"); alive || grace {
		t.Fatalf("after its row was removed: alive %v grace %v, want still dead", alive, grace)
	}
	if alive, grace := l.judge("never-seen"); alive || !grace {
		t.Fatalf("never seen owner: alive %v grace %v, want in grace", alive, grace)
	}
}

// Defect 5 of the review: liveness was judged when the plan ran, on a read made earlier; with a
// slow cycle a live worker whose heartbeat landed after the read could be judged dead. The
// judgement is as of the read's send time, and a changed counter counts from its answer. A
// worker is dead once its counter stood still for the lease period less three quarters of a
// heartbeat (4.5 s of a 6 s lease): by then it has fenced itself.
func TestLivenessJudgedAsOfTheReadsSendTime(t *testing.T) {
	const lease = 6 * time.Second
	l := newLiveness("self", lease, lease/3)
	l.observe(0, 0, []checkpointer.WorkerRow{{ID: "other", Heartbeat: 1}})
	// A read sent at 4.4 s that took 3 s to answer: the counter is unchanged as of 4.4 s, short
	// of 4.5 s, however late the answer is processed.
	l.observe(4400*time.Millisecond, 7400*time.Millisecond, []checkpointer.WorkerRow{{ID: "other", Heartbeat: 1}})
	if !l.alive("other") {
		t.Fatal("judged dead on a read sent before its counter had stood still long enough")
	}
	// A changed counter seen in a read sent at 7 s and answered at 9 s counts from 9 s: the
	// heartbeat may have been written just before the answer.
	l.observe(7*time.Second, 9*time.Second, []checkpointer.WorkerRow{{ID: "other", Heartbeat: 2}})
	l.observe(13400*time.Millisecond, 13400*time.Millisecond, []checkpointer.WorkerRow{{ID: "other", Heartbeat: 2}})
	if !l.alive("other") {
		t.Fatal("a counter that changed was counted from the read's send time, not its answer")
	}
	l.observe(13500*time.Millisecond, 13500*time.Millisecond, []checkpointer.WorkerRow{{ID: "other", Heartbeat: 2}})
	if l.alive("other") {
		t.Fatal("still alive 4.5 s after the answer that showed its last heartbeat")
	}
	// An answer of an older read than the last one judged on is ignored.
	l.observe(10*time.Second, 16*time.Second, []checkpointer.WorkerRow{{ID: "other", Heartbeat: 3}})
	if l.alive("other") {
		t.Fatal("an older read overrode a newer one")
	}
}
