package prometheus

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redpanda-data/benthos/v4/public/service"

	// generate input and drop output for the stream test.
	_ "github.com/redpanda-data/benthos/v4/public/components/pure"
)

func mustExporter(t testing.TB, conf string) *exporter {
	t.Helper()
	env := service.NewEmptyEnvironment()
	pConf, err := ConfigSpec().ParseYAML(conf, env)
	if err != nil {
		t.Fatalf("parse config: %v", err)
	}
	e, err := fromParsed(pConf, nil)
	if err != nil {
		t.Fatalf("new exporter: %v", err)
	}
	return e
}

// scrape serves the exporter's HandlerFunc and returns the response body.
func scrape(t testing.TB, e *exporter) string {
	t.Helper()
	rec := httptest.NewRecorder()
	e.HandlerFunc()(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("scrape status %d: %s", rec.Code, rec.Body.String())
	}
	return rec.Body.String()
}

func TestSanitise(t *testing.T) {
	tests := []struct {
		in, metric, label string
	}{
		{in: "input_received", metric: "input_received", label: "input_received"},
		{in: "foo.bar-baz", metric: "foo_bar_baz", label: "foo_bar_baz"},
		{in: "ns:sub", metric: "ns:sub", label: "ns_sub"},
		{in: "9lives", metric: "_9lives", label: "_9lives"},
		{in: "a1.b2", metric: "a1_b2", label: "a1_b2"},
		{in: "héllo", metric: "h_llo", label: "h_llo"},
		{in: "with space", metric: "with_space", label: "with_space"},
		{in: "", metric: "_", label: "_"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := sanitiseMetricName(tt.in); got != tt.metric {
				t.Errorf("sanitiseMetricName(%q) = %q, want %q", tt.in, got, tt.metric)
			}
			if got := sanitiseLabelName(tt.in); got != tt.label {
				t.Errorf("sanitiseLabelName(%q) = %q, want %q", tt.in, got, tt.label)
			}
		})
	}
}

func TestExporterScrape(t *testing.T) {
	tests := []struct {
		name string
		conf string
		emit func(e *exporter)
		// want is the complete expected exposition; the scrape must match it
		// exactly (no other metric families).
		want string
	}{
		{
			name: "counters with labels",
			conf: `{}`,
			emit: func(e *exporter) {
				ctor := e.NewCounterCtor("input_received", "label", "path")
				a := ctor("foo", "root.input")
				a.Incr(3)
				a.Incr(2)
				a.Incr(-7) // counters cannot decrease, dropped
				ctor("bar", "root.input.broker").Incr(1)
				a.(interface{ IncrFloat64(float64) }).IncrFloat64(0.5)
			},
			want: `
# HELP input_received Benthos Counter metric
# TYPE input_received counter
input_received{label="bar",path="root.input.broker"} 1
input_received{label="foo",path="root.input"} 5.5
`,
		},
		{
			name: "counter without labels and prefix",
			conf: `prefix: benthos`,
			emit: func(e *exporter) {
				e.NewCounterCtor("output_sent")().Incr(7)
			},
			want: `
# HELP benthos_output_sent Benthos Counter metric
# TYPE benthos_output_sent counter
benthos_output_sent 7
`,
		},
		{
			name: "prefix is sanitised and not doubled",
			conf: `prefix: my-app_`,
			emit: func(e *exporter) {
				e.NewCounterCtor("output_sent")().Incr(1)
			},
			want: `
# HELP my_app_output_sent Benthos Counter metric
# TYPE my_app_output_sent counter
my_app_output_sent 1
`,
		},
		{
			name: "gauges",
			conf: `{}`,
			emit: func(e *exporter) {
				ctor := e.NewGaugeCtor("buffer_backlog", "label")
				g := ctor("a")
				g.Set(10)
				g.Set(4)
				ctor("b").(interface{ SetFloat64(float64) }).SetFloat64(2.5)
			},
			want: `
# HELP buffer_backlog Benthos Gauge metric
# TYPE buffer_backlog gauge
buffer_backlog{label="a"} 4
buffer_backlog{label="b"} 2.5
`,
		},
		{
			name: "timers are histograms in seconds",
			conf: `histogram_buckets: [0.001, 0.1, 1]`,
			emit: func(e *exporter) {
				tm := e.NewTimerCtor("output_latency_ns", "label")("out")
				tm.Timing(int64(500 * time.Microsecond)) // 0.0005s
				tm.Timing(int64(50 * time.Millisecond))  // 0.05s
				tm.Timing(int64(2 * time.Second))        // 2s
			},
			want: `
# HELP output_latency_ns Benthos Timing metric (seconds)
# TYPE output_latency_ns histogram
output_latency_ns_bucket{label="out",le="0.001"} 1
output_latency_ns_bucket{label="out",le="0.1"} 2
output_latency_ns_bucket{label="out",le="1"} 2
output_latency_ns_bucket{label="out",le="+Inf"} 3
output_latency_ns_sum{label="out"} 2.0505
output_latency_ns_count{label="out"} 3
`,
		},
		{
			name: "default buckets",
			conf: `{}`,
			emit: func(e *exporter) {
				e.NewTimerCtor("proc_latency_ns")().Timing(int64(300 * time.Millisecond))
			},
			want: `
# HELP proc_latency_ns Benthos Timing metric (seconds)
# TYPE proc_latency_ns histogram
proc_latency_ns_bucket{le="0.005"} 0
proc_latency_ns_bucket{le="0.01"} 0
proc_latency_ns_bucket{le="0.025"} 0
proc_latency_ns_bucket{le="0.05"} 0
proc_latency_ns_bucket{le="0.1"} 0
proc_latency_ns_bucket{le="0.25"} 0
proc_latency_ns_bucket{le="0.5"} 1
proc_latency_ns_bucket{le="1"} 1
proc_latency_ns_bucket{le="2.5"} 1
proc_latency_ns_bucket{le="5"} 1
proc_latency_ns_bucket{le="10"} 1
proc_latency_ns_bucket{le="+Inf"} 1
proc_latency_ns_sum 0.3
proc_latency_ns_count 1
`,
		},
		{
			name: "invalid names are sanitised",
			conf: `{}`,
			emit: func(e *exporter) {
				e.NewCounterCtor("my.custom-metric", "label.key")("v").Incr(2)
			},
			want: `
# HELP my_custom_metric Benthos Counter metric
# TYPE my_custom_metric counter
my_custom_metric{label_key="v"} 2
`,
		},
		{
			name: "same name and labels reuse the vector",
			conf: `{}`,
			emit: func(e *exporter) {
				e.NewCounterCtor("input_received", "label")("x").Incr(1)
				e.NewCounterCtor("input_received", "label")("x").Incr(2)
				// Sanitises to the same name, so also the same vector.
				e.NewCounterCtor("input.received", "label")("x").Incr(3)
			},
			want: `
# HELP input_received Benthos Counter metric
# TYPE input_received counter
input_received{label="x"} 6
`,
		},
		{
			name: "conflicting registrations are ignored",
			conf: `{}`,
			emit: func(e *exporter) {
				e.NewCounterCtor("thing", "a")("1").Incr(1)
				// Same name, different label keys.
				e.NewCounterCtor("thing", "b")("2").Incr(10)
				// Same name, different type.
				e.NewGaugeCtor("thing", "a")("1").Set(100)
				e.NewTimerCtor("thing")().Timing(100)
				// Wrong number of label values.
				e.NewCounterCtor("thing", "a")().Incr(1000)
				e.NewCounterCtor("thing", "a")("1", "2").Incr(1000)
			},
			want: `
# HELP thing Benthos Counter metric
# TYPE thing counter
thing{a="1"} 1
`,
		},
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := mustExporter(t, tt.conf)
			tt.emit(e)

			srv := httptest.NewServer(e.HandlerFunc())
			defer srv.Close()
			if err := testutil.ScrapeAndCompare(srv.URL, strings.NewReader(tt.want)); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestExporterTextLines(t *testing.T) {
	e := mustExporter(t, `prefix: bk`)
	e.NewCounterCtor("input_received", "label", "path")("in", "root.input").Incr(5)
	e.NewGaugeCtor("kinesis.shards")().Set(4)

	body := scrape(t, e)
	for _, line := range []string{
		"# HELP bk_input_received Benthos Counter metric",
		"# TYPE bk_input_received counter",
		`bk_input_received{label="in",path="root.input"} 5`,
		"# TYPE bk_kinesis_shards gauge",
		"bk_kinesis_shards 4",
	} {
		if !containsLine(body, line) {
			t.Errorf("missing line %q in scrape:\n%s", line, body)
		}
	}
}

func TestExporterRuntimeMetrics(t *testing.T) {
	tests := []struct {
		conf          string
		want, notWant []string
	}{
		{conf: `{}`, notWant: []string{"go_goroutines", "process_"}},
		{conf: `add_go_metrics: true`, want: []string{"go_goroutines"}, notWant: []string{"process_"}},
		{conf: `add_process_metrics: true`, want: []string{"process_"}, notWant: []string{"go_goroutines"}},
		{
			conf: "add_go_metrics: true\nadd_process_metrics: true\nprefix: bk",
			want: []string{"go_goroutines", "process_", "bk_x"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.conf, func(t *testing.T) {
			e := mustExporter(t, tt.conf)
			e.NewCounterCtor("x")().Incr(1)
			body := scrape(t, e)
			for _, w := range tt.want {
				if !strings.Contains(body, w) {
					t.Errorf("expected %q in scrape", w)
				}
			}
			for _, w := range tt.notWant {
				if strings.Contains(body, w) {
					t.Errorf("did not expect %q in scrape", w)
				}
			}
		})
	}
}

func TestConfigErrors(t *testing.T) {
	tests := []struct {
		name, conf string
	}{
		{name: "unsorted buckets", conf: `histogram_buckets: [1, 0.5]`},
		{name: "duplicate buckets", conf: `histogram_buckets: [0.5, 0.5]`},
		{name: "wrong type", conf: `add_go_metrics: nope`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pConf, err := ConfigSpec().ParseYAML(tt.conf, service.NewEmptyEnvironment())
			if err != nil {
				return
			}
			if _, err := fromParsed(pConf, nil); err == nil {
				t.Fatal("expected an error")
			}
		})
	}
}

func TestExporterIsolated(t *testing.T) {
	// Each exporter has its own registry.
	a := mustExporter(t, `{}`)
	b := mustExporter(t, `{}`)
	a.NewCounterCtor("only_in_a")().Incr(1)
	if body := scrape(t, b); strings.Contains(body, "only_in_a") {
		t.Fatalf("registry leaked between exporters:\n%s", body)
	}
}

func TestExporterConcurrent(t *testing.T) {
	e := mustExporter(t, `{}`)
	const workers, iters = 8, 500

	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			label := []string{"even", "odd"}[w%2]
			c := e.NewCounterCtor("events", "kind")(label)
			g := e.NewGaugeCtor("level", "kind")(label)
			tm := e.NewTimerCtor("latency_ns", "kind")(label)
			for i := range iters {
				c.Incr(1)
				g.Set(int64(i))
				tm.Timing(int64(i))
				if i%100 == 0 {
					_ = scrape(t, e)
				}
			}
		}()
	}
	wg.Wait()

	body := scrape(t, e)
	for _, line := range []string{
		`events{kind="even"} 2000`,
		`events{kind="odd"} 2000`,
		`latency_ns_count{kind="even"} 2000`,
	} {
		if !containsLine(body, line) {
			t.Errorf("missing line %q in scrape:\n%s", line, body)
		}
	}
}

func TestHotPathAllocations(t *testing.T) {
	e := mustExporter(t, `{}`)
	c := e.NewCounterCtor("c", "l")("v")
	g := e.NewGaugeCtor("g", "l")("v")
	tm := e.NewTimerCtor("t", "l")("v")
	allocs := testing.AllocsPerRun(1000, func() {
		c.Incr(1)
		g.Set(2)
		tm.Timing(3)
	})
	if allocs != 0 {
		t.Fatalf("hot path allocates %v times per run", allocs)
	}
}

func BenchmarkCounterIncr(b *testing.B) {
	e := mustExporter(b, `{}`)
	c := e.NewCounterCtor("input_received", "label", "path")("in", "root.input")
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			c.Incr(1)
		}
	})
}

func TestRegisterAndRunStream(t *testing.T) {
	env := service.NewEnvironment()
	if err := Register(env); err != nil {
		t.Fatal(err)
	}

	sb := env.NewStreamBuilder()
	if err := sb.SetYAML(`
input:
  label: gen
  generate:
    mapping: 'root = "hello"'
    interval: ""
    count: 5
output:
  label: sink
  drop: {}
metrics:
  prometheus:
    prefix: ""
logger:
  level: none
`); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	sb.SetHTTPMux(mux)

	stream, err := sb.Build()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := stream.Run(ctx); err != nil {
		t.Fatalf("stream run: %v", err)
	}

	for _, path := range []string{"/metrics", "/stats"} {
		srv := httptest.NewServer(mux)
		res, err := http.Get(srv.URL + path)
		if err != nil {
			srv.Close()
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		_ = res.Body.Close()
		srv.Close()
		if res.StatusCode != http.StatusOK {
			t.Fatalf("%s: status %d", path, res.StatusCode)
		}
		for _, line := range []string{
			"# TYPE input_received counter",
			`input_received{label="gen",path="root.input"} 5`,
			`output_sent{label="sink",path="root.output"} 5`,
			"# TYPE output_latency_ns histogram",
		} {
			if !containsLine(string(body), line) {
				t.Errorf("%s: missing line %q in scrape:\n%s", path, line, body)
			}
		}
	}
}

func TestRegisterNilEnvironment(t *testing.T) {
	if err := Register(nil); err == nil {
		t.Fatal("expected error for nil environment")
	}
}

func containsLine(body, line string) bool {
	for l := range strings.SplitSeq(body, "\n") {
		if l == line {
			return true
		}
	}
	return false
}
