package input

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// monoBase anchors the gate's deadlines on the monotonic clock, which keeps
// counting through a SIGSTOP or a suspended VM.
var monoBase = time.Now()

// gate pauses delivery while the worker is fenced (it could not heartbeat).
//
// The coordinator shuts it with a timer, but a timer is not enough: after a
// long pause (SIGSTOP, a frozen VM) the goroutines that were waiting to
// deliver can run before the timer does. So the gate also holds the
// deadline itself and every delivery checks the clock: past it, the worker
// fences on the spot.
//
// Delivery needs both: the gate open and the deadline not passed. A
// heartbeat that gets through moves the deadline while the gate is still
// shut; the gate opens only once the coordinator has re-taken its leases.
type gate struct {
	mu     sync.Mutex
	open   bool
	opened chan struct{} // closed while open
	shut   chan struct{} // closed while shut

	until   atomic.Int64 // monotonic ns since monoBase until which delivery is safe; 0: no deadline yet
	onFence func()       // fences the worker (shuts the gate and tells the coordinator)
}

func newGate() *gate {
	g := &gate{open: true, opened: make(chan struct{}), shut: make(chan struct{})}
	close(g.opened)
	return g
}

func (g *gate) set(open bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if open == g.open {
		return
	}
	g.open = open
	if open {
		close(g.opened)
		g.shut = make(chan struct{})
	} else {
		close(g.shut)
		g.opened = make(chan struct{})
	}
}

// extend makes delivery safe until t. It does not open the gate.
func (g *gate) extend(t time.Time) { g.until.Store(int64(t.Sub(monoBase))) }

// live reports whether the deadline has not passed.
func (g *gate) live() bool {
	u := g.until.Load()
	return u == 0 || int64(time.Since(monoBase)) < u
}

// fence shuts the gate because the deadline has passed. The gate shuts
// itself too, whatever onFence does: a gate left open past its deadline
// would have its waiters spin.
func (g *gate) fence() {
	if g.onFence != nil {
		g.onFence()
	}
	g.set(false)
}

// channels returns the channel closed while the gate is open and the one
// closed while it is shut, as of now.
func (g *gate) channels() (opened, shut <-chan struct{}) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.opened, g.shut
}

// send hands d to out once the gate is open and the deadline not passed,
// and gives up the send if the gate shuts while it waits for a reader: a
// fenced worker delivers nothing.
func (g *gate) send(ctx context.Context, out chan<- delivery, d delivery) error {
	for {
		opened, shut := g.channels()
		select {
		case <-opened:
		case <-ctx.Done():
			return ctx.Err()
		}
		if !g.live() {
			g.fence()
			continue
		}
		select {
		case out <- d:
			return nil
		case <-shut:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// admit decides whether a delivery taken from out may go to the pipeline:
// the send and the take can both happen after a pause that outlived the
// deadline, before anything shut the gate, and a send can race the gate
// shutting. It admits only while the gate is open and the deadline not
// passed (fencing on the spot past it), and waits otherwise. It reports
// false if the delivery's shard is no longer its consumer's (d.ctx ended:
// its records are read again by the next owner from the checkpoint) or ctx
// ended; the caller tells which from the contexts.
func (g *gate) admit(ctx context.Context, d delivery) bool {
	for {
		opened, _ := g.channels()
		select {
		case <-opened:
			if g.live() {
				// The coordinator stops the consumers of lost shards before
				// it opens the gate again.
				return d.ctx.Err() == nil
			}
			g.fence()
			continue
		default:
		}
		select {
		case <-opened:
		case <-d.ctx.Done():
			return false
		case <-ctx.Done():
			return false
		}
	}
}
