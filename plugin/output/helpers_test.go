package output

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"
)

// writerFromYAML builds an unconnected writer from the output's fields in
// YAML, talking to client.
func writerFromYAML(tb testing.TB, yaml string, client kinesisAPI) *kinesisWriter {
	tb.Helper()
	conf, err := Spec().ParseYAML(yaml, nil)
	if err != nil {
		tb.Fatal(err)
	}
	wc, err := writerConfigFromParsed(conf)
	if err != nil {
		tb.Fatal(err)
	}
	return newKinesisWriter(wc, service.MockResources(), func() kinesisAPI { return client })
}

// connectedWriter is writerFromYAML, connected, and closed when the test ends.
func connectedWriter(tb testing.TB, yaml string, client kinesisAPI) *kinesisWriter {
	tb.Helper()
	w := writerFromYAML(tb, yaml, client)
	connect(tb, w)
	return w
}

// connect connects w and closes it when the test ends.
func connect(tb testing.TB, w *kinesisWriter) {
	tb.Helper()
	if err := w.Connect(context.Background()); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = w.Close(context.Background()) })
}

// simClock is simulated time: it moves only when the writer waits, by as
// long as it waits, and at once.
type simClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *simClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *simClock) after(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	c.now = c.now.Add(d)
	ch := make(chan time.Time, 1)
	ch <- c.now
	c.mu.Unlock()
	return ch
}

// simulate puts w, not yet connected, on simulated time.
func simulate(w *kinesisWriter) *simClock {
	c := &simClock{now: t0}
	w.now, w.after = c.Now, c.after
	return c
}
