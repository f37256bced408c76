package input

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"
)

func TestParseStreams(t *testing.T) {
	for _, c := range []struct {
		in      []string
		want    string
		wantErr string
	}{
		{[]string{"foo"}, "foo[]", ""},
		{[]string{"foo, bar", "baz"}, "foo[] bar[] baz[]", ""},
		{[]string{"foo:0,foo:1", "bar:shardId-000000000002"}, "foo[0 1] bar[shardId-000000000002]", ""},
		{[]string{"arn:aws:kinesis:eu-west-1:111122223333:stream/my-stream"}, "arn:aws:kinesis:eu-west-1:111122223333:stream/my-stream[]", ""},
		{[]string{"arn:aws:kinesis:eu-west-1:111122223333:stream/my-stream:7"}, "arn:aws:kinesis:eu-west-1:111122223333:stream/my-stream[7]", ""},
		{[]string{"foo", "bar:1"}, "", "cannot be mixed"},
		{[]string{"foo:0:1"}, "", "name one shard per entry"},
		{[]string{"foo:"}, "", "empty shard"},
		{[]string{" , "}, "", "at least one stream"},
		{[]string{"__benthos_kinesis_workers__"}, "", "reserved"},
	} {
		refs, err := parseStreams(c.in)
		if c.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Errorf("%q: error %v, want %q", c.in, err, c.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", c.in, err)
			continue
		}
		var got []string
		for _, r := range refs {
			got = append(got, r.id+"["+strings.Join(r.shards, " ")+"]")
		}
		if strings.Join(got, " ") != c.want {
			t.Errorf("%q: %s, want %s", c.in, strings.Join(got, " "), c.want)
		}
	}
}

func TestInputConfigDefaults(t *testing.T) {
	pConf, err := Spec().ParseYAML("streams: [foo]\ndynamodb: {table: t}\n", nil)
	if err != nil {
		t.Fatal(err)
	}
	conf, err := inputConfigFromParsed(pConf)
	if err != nil {
		t.Fatal(err)
	}
	if conf.leasePeriod != 3500*time.Millisecond || conf.maxWritesInFlight != 32 || conf.checkpointLimit != 1024 || conf.pace.minInterval.Milliseconds() != 200 || !conf.startFromOldest {
		t.Fatalf("defaults: %+v", conf)
	}
	for yaml, want := range map[string]string{
		"streams: [foo]\n": "dynamodb.table is required",
		"streams: [foo]\ndynamodb: {table: t}\nlease_period: 0s\n":           "lease_period must be greater than zero",
		"streams: [foo]\ndynamodb: {table: t}\nstart_timestamp: yesterday\n": "start_timestamp",
	} {
		pConf, err := Spec().ParseYAML(yaml, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := inputConfigFromParsed(pConf); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want %q", yaml, err, want)
		}
	}
}

// lintInput lints an aws_kinesis input config (the fields under
// aws_kinesis:) with the input alone registered, and returns what each lint
// says.
func lintInput(t *testing.T, fields string) []string {
	t.Helper()
	env := service.NewEmptyEnvironment()
	if err := Register(env, "aws_kinesis"); err != nil {
		t.Fatal(err)
	}
	lints, err := env.NewComponentConfigLinter().LintInputYAML([]byte("aws_kinesis:\n" + indent(fields, "  ")))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, l := range lints {
		got = append(got, l.What)
	}
	return got
}

// The fields Redpanda Connect 4.107 added to the built-in (poll_period,
// enhanced_fan_out) lint with the built-in's rules, and a config built in
// code gets the same message when it is parsed; each message names its
// field.
func TestSpecLint4107Fields(t *testing.T) {
	const base = "streams: [foo]\ndynamodb: {table: t}\n"
	for _, c := range []struct {
		name, yaml string
		want       []string // every lint, in order; none when empty
		wantParse  string   // the parse error; "" when it parses
	}{
		{"defaults", "", nil, ""},
		{"poll_period at the lease period", "poll_period: 3.5s\n", nil, ""},
		{"poll_period below the default lease period", "poll_period: 1s\n", nil, ""},
		// A built-in config leaves lease_period out, relying on its 30s:
		// the message names both defaults and the fix.
		{"poll_period above the default lease period", "poll_period: 5s\n",
			[]string{msgPollPeriodAboveLease + " (5s > 3.5s): " + msgPollPeriodAboveDefaultLease},
			msgPollPeriodAboveLease + " (5s > 3.5s): " + msgPollPeriodAboveDefaultLease},
		{"poll_period above the default lease period, set explicitly", "lease_period: 3.5s\npoll_period: 4s\n",
			[]string{msgPollPeriodAboveLease + " (4s > 3.5s): " + msgPollPeriodAboveDefaultLease},
			msgPollPeriodAboveLease + " (4s > 3.5s): " + msgPollPeriodAboveDefaultLease},
		{"poll_period above a set lease period", "lease_period: 30s\npoll_period: 31s\n",
			[]string{msgPollPeriodAboveLease + " (31s > 30s): " + msgPollPeriodAboveSetLease},
			msgPollPeriodAboveLease + " (31s > 30s): " + msgPollPeriodAboveSetLease},
		{"the fix the message gives", "lease_period: 30s\npoll_period: 5s\n", nil, ""},
		{"poll_period below a set lease period", "lease_period: 30s\npoll_period: 29s\n", nil, ""},
		{"negative poll_period", "poll_period: -1s\n", []string{msgPollPeriodNegative}, msgPollPeriodNegative},
		{"poll_period not a duration", "poll_period: soon\n", []string{"poll_period: soon is not a duration"}, "soon"},
		{"the removed poll.min_interval", "poll: {min_interval: 1s}\n",
			[]string{msgPollIntervalRemoved, "field min_interval not recognised"}, msgPollIntervalRemoved},
		{"fan-out off with its fields set", "enhanced_fan_out: {enabled: false, consumer_name: app, consumer_activation_timeout: 2m, max_resubscribe_interval: 1s}\n", nil, ""},
		{"fan-out on", "enhanced_fan_out: {enabled: true, consumer_name: app}\n", []string{errEFONotSupported}, errEFONotSupported},
		{"fan-out on without a consumer name", "enhanced_fan_out: {enabled: true}\n",
			[]string{msgEFOConsumerRequired, errEFONotSupported}, errEFONotSupported + "; " + msgEFOConsumerRequired},
		// The built-in checks the other fields only when enabled is true:
		// with fan-out off (the default, or written) they lint and parse
		// clean whatever their value.
		{"zero activation timeout, fan-out off", "enhanced_fan_out: {consumer_activation_timeout: 0s}\n", nil, ""},
		{"negative activation timeout, fan-out off", "enhanced_fan_out: {enabled: false, consumer_activation_timeout: -1m}\n", nil, ""},
		{"zero resubscribe interval, fan-out off", "enhanced_fan_out: {max_resubscribe_interval: 0s}\n", nil, ""},
		{"resubscribe interval below 1s, fan-out off", "enhanced_fan_out: {enabled: false, max_resubscribe_interval: 999ms}\n", nil, ""},
		// With fan-out on they are checked, and their messages come with the
		// refusal, so that the user sees all there is to fix.
		{"zero activation timeout, fan-out on", "enhanced_fan_out: {enabled: true, consumer_name: app, consumer_activation_timeout: 0s}\n",
			[]string{msgEFOActivationPositive, errEFONotSupported}, errEFONotSupported + "; " + msgEFOActivationPositive},
		{"negative activation timeout, fan-out on", "enhanced_fan_out: {enabled: true, consumer_name: app, consumer_activation_timeout: -1m}\n",
			[]string{msgEFOActivationPositive, errEFONotSupported}, errEFONotSupported + "; " + msgEFOActivationPositive},
		{"resubscribe interval below 1s, fan-out on", "enhanced_fan_out: {enabled: true, consumer_name: app, max_resubscribe_interval: 999ms}\n",
			[]string{msgEFOResubscribeMin, errEFONotSupported}, errEFONotSupported + "; " + msgEFOResubscribeMin},
		{"resubscribe interval at 1s, fan-out on", "enhanced_fan_out: {enabled: true, consumer_name: app, max_resubscribe_interval: 1s}\n",
			[]string{errEFONotSupported}, errEFONotSupported},
		{"every fan-out rule broken", "enhanced_fan_out: {enabled: true, consumer_activation_timeout: 0s, max_resubscribe_interval: 0s}\n",
			[]string{msgEFOConsumerRequired, msgEFOActivationPositive, msgEFOResubscribeMin, errEFONotSupported},
			errEFONotSupported + "; " + msgEFOConsumerRequired + "; " + msgEFOActivationPositive + "; " + msgEFOResubscribeMin},
		// An unparsable duration is an error whatever enabled says.
		{"activation timeout not a duration", "enhanced_fan_out: {consumer_activation_timeout: later}\n",
			[]string{"enhanced_fan_out.consumer_activation_timeout: later is not a duration"}, "later"},
		{"resubscribe interval not a duration, fan-out on", "enhanced_fan_out: {enabled: true, consumer_name: app, max_resubscribe_interval: often}\n",
			[]string{errEFONotSupported, "enhanced_fan_out.max_resubscribe_interval: often is not a duration"}, "often"},
		{"resubscribe interval at 1s", "enhanced_fan_out: {max_resubscribe_interval: 1s}\n", nil, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := lintInput(t, base+c.yaml)
			if strings.Join(got, "\n") != strings.Join(c.want, "\n") {
				t.Errorf("lints:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(c.want, "\n"))
			}
			pConf, err := Spec().ParseYAML(base+c.yaml, nil)
			if err != nil {
				t.Fatal(err)
			}
			_, err = inputConfigFromParsed(pConf)
			switch {
			case c.wantParse == "" && err != nil:
				t.Errorf("parse: %v", err)
			case c.wantParse != "" && (err == nil || !strings.Contains(err.Error(), c.wantParse)):
				t.Errorf("parse error %v, want one saying %q", err, c.wantParse)
			}
		})
	}
}

// poll_period is the least time between two GetRecords calls of a shard;
// 0s keeps this input's own 200ms (5 calls per second, Kinesis' limit).
func TestSpecPollPeriodSetsPacing(t *testing.T) {
	for _, c := range []struct {
		yaml string
		want time.Duration
	}{
		{"", 200 * time.Millisecond},
		{"poll_period: 0s\n", 200 * time.Millisecond},
		{"poll_period: 1ms\n", time.Millisecond},
		{"poll_period: 500ms\n", 500 * time.Millisecond},
		{"poll_period: 3s\n", 3 * time.Second},
	} {
		pConf, err := Spec().ParseYAML("streams: [foo]\ndynamodb: {table: t}\n"+c.yaml, nil)
		if err != nil {
			t.Fatal(err)
		}
		conf, err := inputConfigFromParsed(pConf)
		if err != nil {
			t.Fatalf("%q: %v", c.yaml, err)
		}
		if conf.pace.minInterval != c.want {
			t.Errorf("%q: least interval %v, want %v", c.yaml, conf.pace.minInterval, c.want)
		}
	}
}

// enhanced_fan_out.enabled: true fails at start too, with the same plain
// message, when linting is off (a config built in code, or `run` without
// lint).
func TestSpecFanOutRefusedAtStart(t *testing.T) {
	env := service.NewEnvironment() // pure components: the stream needs a tracer
	if err := Register(env, "aws_kinesis"); err != nil {
		t.Fatal(err)
	}
	sb := env.NewStreamBuilder()
	sb.DisableLinting()
	if err := sb.AddInputYAML("aws_kinesis:\n  streams: [foo]\n  dynamodb: {table: t}\n  enhanced_fan_out: {enabled: true, consumer_name: app}\n"); err != nil {
		t.Fatal(err)
	}
	if err := sb.AddConsumerFunc(func(context.Context, *service.Message) error { return nil }); err != nil {
		t.Fatal(err)
	}
	st, err := sb.Build()
	if err != nil {
		t.Fatal(err)
	}
	// The input is made when the stream runs; it refuses before any call.
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if err := st.Run(ctx); err == nil || !strings.Contains(err.Error(), errEFONotSupported) {
		t.Fatalf("run: %v, want an error saying %q", err, errEFONotSupported)
	}
}

// A poll_period above lease_period says what to do, in words a user of the
// built-in (whose lease_period defaults to 30s) can act on: both defaults
// and the two fixes when lease_period is this input's default, the two
// fixes otherwise. The text is spelled out here, not taken from the
// constants, so that a wrong constant fails too.
func TestSpecPollPeriodAboveLeaseSaysWhatToDo(t *testing.T) {
	const base = "streams: [foo]\ndynamodb: {table: t}\n"
	for _, c := range []struct {
		name, yaml string
		want       []string // each is in the lint and in the parse error
		notWant    []string
	}{
		{"lease_period not set", "poll_period: 5s\n",
			[]string{"(5s > 3.5s)", "default lease_period is 3.5s", "the built-in's is 30s", "set lease_period explicitly (e.g. lease_period: 30s", "or a shorter poll_period"}, nil},
		{"lease_period set", "lease_period: 2s\npoll_period: 5s\n",
			[]string{"(5s > 2s)", "a shorter poll_period or a longer lease_period"}, []string{"default", "30s"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			lints := lintInput(t, base+c.yaml)
			if len(lints) != 1 {
				t.Fatalf("lints %q, want one", lints)
			}
			pConf, err := Spec().ParseYAML(base+c.yaml, nil)
			if err != nil {
				t.Fatal(err)
			}
			_, err = inputConfigFromParsed(pConf)
			if err == nil {
				t.Fatal("parsed, want an error")
			}
			for what, msg := range map[string]string{"lint": lints[0], "parse error": err.Error()} {
				for _, w := range c.want {
					if !strings.Contains(msg, w) {
						t.Errorf("%s %q does not say %q", what, msg, w)
					}
				}
				for _, w := range c.notWant {
					if strings.Contains(msg, w) {
						t.Errorf("%s %q says %q", what, msg, w)
					}
				}
			}
		})
	}
}
