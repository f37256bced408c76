// Package prometheus provides a Benthos metrics exporter named `prometheus`
// that records all pipeline metrics (counters, gauges and timers) in a private
// Prometheus registry and serves them in the Prometheus text exposition format
// on the Benthos HTTP server at the `/metrics` and `/stats` endpoints.
//
// The exporter is not registered automatically: call Register with the
// environment that the binary (or a stream builder) uses, for example
// service.GlobalEnvironment().
package prometheus

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redpanda-data/benthos/v4/public/service"
)

// ExporterName is the name under which the metrics exporter is registered,
// i.e. the key used in the `metrics` section of a config.
const ExporterName = "prometheus"

const (
	fieldPrefix            = "prefix"
	fieldAddProcessMetrics = "add_process_metrics"
	fieldAddGoMetrics      = "add_go_metrics"
	fieldHistogramBuckets  = "histogram_buckets"
)

const (
	helpCounter = "Benthos Counter metric"
	helpGauge   = "Benthos Gauge metric"
	helpTimer   = "Benthos Timing metric (seconds)"
)

// ConfigSpec returns the configuration spec of the `prometheus` metrics
// exporter.
func ConfigSpec() *service.ConfigSpec {
	return service.NewConfigSpec().
		Stable().
		Summary("Host endpoints (`/metrics` and `/stats`) for Prometheus scraping.").
		Description(`
Metrics are kept in a registry private to this exporter and are served in the Prometheus text exposition format by the service-wide HTTP server at the endpoints `+"`/metrics` and `/stats`"+`.

Counters are exported as Prometheus counters, gauges as Prometheus gauges and timings as Prometheus histograms. Benthos measures timings in nanoseconds, these are converted into seconds before being observed, the metric names themselves are left as they are (e.g. `+"`output_latency_ns`"+`), which keeps them compatible with the Redpanda Connect `+"`prometheus`"+` exporter with `+"`use_histogram_timing: true`"+`.

Characters of metric and label names that are not allowed by Prometheus (such as `+"`.`"+` or `+"`-`"+`) are replaced with underscores.`).
		Fields(
			service.NewStringField(fieldPrefix).
				Description("A prefix added to the name of every Benthos metric, separated from the metric name by an underscore. Process and Go runtime metrics are not prefixed. Invalid characters are replaced with underscores. Leave empty for no prefix.").
				Example("benthos").
				Default(""),
			service.NewBoolField(fieldAddProcessMetrics).
				Description("Whether to export process metrics such as CPU and memory usage (`process_*`) in addition to Benthos metrics.").
				Example(true).
				Advanced().
				Default(false),
			service.NewBoolField(fieldAddGoMetrics).
				Description("Whether to export Go runtime metrics such as GC pauses and goroutine counts (`go_*`) in addition to Benthos metrics.").
				Example(true).
				Advanced().
				Default(false),
			service.NewFloatListField(fieldHistogramBuckets).
				Description("Upper bounds (in seconds) of the histogram buckets used for timing metrics, in strictly increasing order. If left empty the Prometheus default buckets are used (`[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]`).").
				Example([]float64{0.001, 0.01, 0.1, 1, 10}).
				Advanced().
				Default([]any{}),
		)
}

// Register registers the `prometheus` metrics exporter on env. Registering it
// again replaces the previous registration.
func Register(env *service.Environment) error {
	if env == nil {
		return errors.New("prometheus: nil environment")
	}
	return env.RegisterMetricsExporter(ExporterName, ConfigSpec(),
		func(conf *service.ParsedConfig, log *service.Logger) (service.MetricsExporter, error) {
			return fromParsed(conf, log)
		})
}

//------------------------------------------------------------------------------

type exporterConfig struct {
	prefix            string
	addProcessMetrics bool
	addGoMetrics      bool
	histogramBuckets  []float64
}

func fromParsed(conf *service.ParsedConfig, log *service.Logger) (*exporter, error) {
	var (
		c   exporterConfig
		err error
	)
	if c.prefix, err = conf.FieldString(fieldPrefix); err != nil {
		return nil, err
	}
	if c.addProcessMetrics, err = conf.FieldBool(fieldAddProcessMetrics); err != nil {
		return nil, err
	}
	if c.addGoMetrics, err = conf.FieldBool(fieldAddGoMetrics); err != nil {
		return nil, err
	}
	if c.histogramBuckets, err = conf.FieldFloatList(fieldHistogramBuckets); err != nil {
		return nil, err
	}
	return newExporter(c, log)
}

// exporter implements service.MetricsExporter on top of a private Prometheus
// registry. It additionally implements HandlerFunc, which the Benthos HTTP
// server (or a stream builder's HTTP mux) uses to serve /metrics and /stats.
type exporter struct {
	log     *service.Logger
	reg     *prometheus.Registry
	handler http.Handler
	prefix  string
	buckets []float64

	mu       sync.Mutex
	counters map[string]*prometheus.CounterVec
	gauges   map[string]*prometheus.GaugeVec
	timers   map[string]*prometheus.HistogramVec
}

var _ service.MetricsExporter = (*exporter)(nil)

func newExporter(c exporterConfig, log *service.Logger) (*exporter, error) {
	buckets, err := validateBuckets(c.histogramBuckets)
	if err != nil {
		return nil, err
	}

	prefix := ""
	if c.prefix != "" {
		prefix = sanitiseMetricName(c.prefix)
		if !strings.HasSuffix(prefix, "_") {
			prefix += "_"
		}
	}

	reg := prometheus.NewRegistry()
	if c.addProcessMetrics {
		if err := reg.Register(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})); err != nil {
			return nil, fmt.Errorf("registering process metrics: %w", err)
		}
	}
	if c.addGoMetrics {
		if err := reg.Register(collectors.NewGoCollector()); err != nil {
			return nil, fmt.Errorf("registering Go metrics: %w", err)
		}
	}

	return &exporter{
		log: log,
		reg: reg,
		handler: promhttp.HandlerFor(reg, promhttp.HandlerOpts{
			ErrorLog:      promErrorLogger{log},
			ErrorHandling: promhttp.ContinueOnError,
		}),
		prefix:   prefix,
		buckets:  buckets,
		counters: map[string]*prometheus.CounterVec{},
		gauges:   map[string]*prometheus.GaugeVec{},
		timers:   map[string]*prometheus.HistogramVec{},
	}, nil
}

func validateBuckets(in []float64) ([]float64, error) {
	if len(in) == 0 {
		return prometheus.DefBuckets, nil
	}
	for i, b := range in {
		if math.IsNaN(b) {
			return nil, fmt.Errorf("%s: bucket %d is NaN", fieldHistogramBuckets, i)
		}
		if i > 0 && b <= in[i-1] {
			return nil, fmt.Errorf("%s: buckets must be in strictly increasing order, got %v after %v", fieldHistogramBuckets, b, in[i-1])
		}
	}
	return append([]float64(nil), in...), nil
}

// HandlerFunc returns the handler serving the registry in the Prometheus
// exposition format. Benthos registers it at /metrics and /stats.
func (e *exporter) HandlerFunc() http.HandlerFunc {
	return e.handler.ServeHTTP
}

// Close implements service.MetricsExporter. Nothing needs releasing: the
// registry is private and dropped with the exporter.
func (e *exporter) Close(context.Context) error {
	return nil
}

// names sanitises the metric name (adding the prefix) and label keys and
// returns them along with the key identifying the vector.
func (e *exporter) names(name string, labelKeys []string) (fqName string, labels []string, key string) {
	fqName = e.prefix + sanitiseMetricName(name)
	labels = make([]string, len(labelKeys))
	var sb strings.Builder
	sb.WriteString(fqName)
	for i, k := range labelKeys {
		labels[i] = sanitiseLabelName(k)
		sb.WriteByte(0)
		sb.WriteString(labels[i])
	}
	return fqName, labels, sb.String()
}

// register registers c, falling back to an already registered collector of the
// same type. ok is false (and the problem logged) when the metric cannot be
// exported, e.g. because the same name is already used with other labels or
// another metric type.
func register[T prometheus.Collector](e *exporter, kind, name string, c T) (T, bool) {
	err := e.reg.Register(c)
	if err == nil {
		return c, true
	}
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(T); ok {
			return existing, true
		}
	}
	e.log.Errorf("Ignoring %s metric '%s': %v", kind, name, err)
	var zero T
	return zero, false
}

// NewCounterCtor implements service.MetricsExporter.
func (e *exporter) NewCounterCtor(name string, labelKeys ...string) service.MetricsExporterCounterCtor {
	fqName, labels, key := e.names(name, labelKeys)

	e.mu.Lock()
	vec, ok := e.counters[key]
	if !ok {
		vec, ok = register(e, "counter", fqName, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: fqName,
			Help: helpCounter,
		}, labels))
		if ok {
			e.counters[key] = vec
		}
	}
	e.mu.Unlock()

	if !ok {
		return func(...string) service.MetricsExporterCounter { return noopMetric{} }
	}
	return func(labelValues ...string) service.MetricsExporterCounter {
		c, err := vec.GetMetricWithLabelValues(labelValues...)
		if err != nil {
			e.log.Errorf("Ignoring counter metric '%s' with label values %q: %v", fqName, labelValues, err)
			return noopMetric{}
		}
		return counter{c}
	}
}

// NewGaugeCtor implements service.MetricsExporter.
func (e *exporter) NewGaugeCtor(name string, labelKeys ...string) service.MetricsExporterGaugeCtor {
	fqName, labels, key := e.names(name, labelKeys)

	e.mu.Lock()
	vec, ok := e.gauges[key]
	if !ok {
		vec, ok = register(e, "gauge", fqName, prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: fqName,
			Help: helpGauge,
		}, labels))
		if ok {
			e.gauges[key] = vec
		}
	}
	e.mu.Unlock()

	if !ok {
		return func(...string) service.MetricsExporterGauge { return noopMetric{} }
	}
	return func(labelValues ...string) service.MetricsExporterGauge {
		g, err := vec.GetMetricWithLabelValues(labelValues...)
		if err != nil {
			e.log.Errorf("Ignoring gauge metric '%s' with label values %q: %v", fqName, labelValues, err)
			return noopMetric{}
		}
		return gauge{g}
	}
}

// NewTimerCtor implements service.MetricsExporter.
func (e *exporter) NewTimerCtor(name string, labelKeys ...string) service.MetricsExporterTimerCtor {
	fqName, labels, key := e.names(name, labelKeys)

	e.mu.Lock()
	vec, ok := e.timers[key]
	if !ok {
		vec, ok = register(e, "timer", fqName, prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    fqName,
			Help:    helpTimer,
			Buckets: e.buckets,
		}, labels))
		if ok {
			e.timers[key] = vec
		}
	}
	e.mu.Unlock()

	if !ok {
		return func(...string) service.MetricsExporterTimer { return noopMetric{} }
	}
	return func(labelValues ...string) service.MetricsExporterTimer {
		o, err := vec.GetMetricWithLabelValues(labelValues...)
		if err != nil {
			e.log.Errorf("Ignoring timer metric '%s' with label values %q: %v", fqName, labelValues, err)
			return noopMetric{}
		}
		return timer{o}
	}
}

//------------------------------------------------------------------------------

// counter is a resolved child of a CounterVec. Benthos calls the ctor once per
// label value set and keeps the result, so Incr is a single atomic add.
type counter struct{ c prometheus.Counter }

// Incr adds count; negative values are dropped since Prometheus counters
// cannot decrease.
func (c counter) Incr(count int64) {
	if count > 0 {
		c.c.Add(float64(count))
	}
}

// IncrFloat64 adds count; negative values are dropped.
func (c counter) IncrFloat64(count float64) {
	if count > 0 {
		c.c.Add(count)
	}
}

// gauge is a resolved child of a GaugeVec. Benthos tracks Incr/Decr of gauges
// itself and only ever calls Set or, when available, SetFloat64.
type gauge struct{ g prometheus.Gauge }

func (g gauge) Set(value int64)          { g.g.Set(float64(value)) }
func (g gauge) SetFloat64(value float64) { g.g.Set(value) }

type timer struct{ o prometheus.Observer }

// Timing observes delta, given in nanoseconds, in seconds.
func (t timer) Timing(delta int64) {
	t.o.Observe(float64(delta) / 1e9)
}

// noopMetric is handed out for metrics that cannot be exported.
type noopMetric struct{}

func (noopMetric) Incr(int64)          {}
func (noopMetric) IncrFloat64(float64) {}
func (noopMetric) Set(int64)           {}
func (noopMetric) SetFloat64(float64)  {}
func (noopMetric) Timing(int64)        {}

//------------------------------------------------------------------------------

// sanitiseMetricName maps name onto the (legacy) Prometheus metric name
// charset [a-zA-Z_:][a-zA-Z0-9_:]*, replacing every other character with an
// underscore.
func sanitiseMetricName(name string) string {
	return sanitise(name, true)
}

// sanitiseLabelName maps name onto the Prometheus label name charset
// [a-zA-Z_][a-zA-Z0-9_]*, replacing every other character with an underscore.
func sanitiseLabelName(name string) string {
	return sanitise(name, false)
}

func sanitise(name string, allowColon bool) string {
	if name == "" {
		return "_"
	}
	valid := func(i int, b byte) bool {
		return b == '_' ||
			(b >= 'a' && b <= 'z') ||
			(b >= 'A' && b <= 'Z') ||
			(i > 0 && b >= '0' && b <= '9') ||
			(allowColon && b == ':')
	}
	clean := true
	for i := 0; i < len(name); i++ {
		if !valid(i, name[i]) {
			clean = false
			break
		}
	}
	if clean {
		return name
	}

	var sb strings.Builder
	sb.Grow(len(name) + 1)
	if b := name[0]; b >= '0' && b <= '9' {
		sb.WriteByte('_')
	}
	// Iterate over runes so that a multi-byte character becomes a single
	// underscore.
	for _, r := range name {
		if r < 0x80 && valid(1, byte(r)) {
			sb.WriteRune(r)
		} else {
			sb.WriteByte('_')
		}
	}
	return sb.String()
}

// promErrorLogger adapts the Benthos logger for promhttp.
type promErrorLogger struct{ log *service.Logger }

func (l promErrorLogger) Println(v ...any) {
	l.log.Error(strings.TrimSuffix(fmt.Sprintln(v...), "\n"))
}
