package input

import (
	"strings"
	"testing"
	"time"
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
