package output

import (
	"context"
	"testing"

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
	if err := w.Connect(context.Background()); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = w.Close(context.Background()) })
	return w
}
