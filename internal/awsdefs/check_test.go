package awsdefs

import (
	"errors"
	"flag"
	"strings"
	"testing"

	"github.com/benthos-kinesis/benthos-kinesis/internal/awssession"
)

func testPolicy(t *testing.T, actions ...string) Policy {
	t.Helper()
	doc := `{"Version":"2012-10-17","Statement":{"Sid":"S","Effect":"Allow","Action":["` + strings.Join(actions, `","`) + `"],"Resource":"arn:x"}}`
	p, err := ParsePolicy("test.json", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCompare(t *testing.T) {
	p := testPolicy(t, "kinesis:GetRecords", "kinesis:ListShards", "kinesis:SubscribeToShard")
	cases := []struct {
		name   string
		called []string
		exempt map[string]string
		want   []string // substrings of the error; none: no error
	}{
		{
			name:   "exact, with an exemption",
			called: []string{"kinesis:GetRecords", "kinesis:ListShards"},
			exempt: map[string]string{"kinesis:SubscribeToShard": "not built"},
		},
		{
			name:   "called but not allowed",
			called: []string{"kinesis:GetRecords", "kinesis:ListShards", "kinesis:DescribeStream"},
			exempt: map[string]string{"kinesis:SubscribeToShard": "not built"},
			want:   []string{"kinesis:DescribeStream is called but not allowed"},
		},
		{
			name:   "allowed but never called",
			called: []string{"kinesis:GetRecords"},
			exempt: map[string]string{"kinesis:SubscribeToShard": "not built"},
			want:   []string{"kinesis:ListShards is allowed but never called"},
		},
		{
			name:   "stale exemption",
			called: []string{"kinesis:GetRecords", "kinesis:ListShards", "kinesis:SubscribeToShard"},
			exempt: map[string]string{"kinesis:SubscribeToShard": "not built"},
			want:   []string{"kinesis:SubscribeToShard is exempt (\"not built\") but called"},
		},
		{
			name:   "exemption of an action not in the policy, exemption without reason",
			called: []string{"kinesis:GetRecords", "kinesis:ListShards"},
			exempt: map[string]string{"kinesis:SubscribeToShard": " ", "kinesis:PutRecords": "why"},
			want:   []string{"kinesis:PutRecords is exempt (\"why\") but not in the policy", "kinesis:SubscribeToShard is exempt without a reason"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := Compare(tc.called, p, tc.exempt)
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil {
				t.Fatalf("no error, want %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}

// testFlags returns a flag lookup with the test flags decide reads, set as given.
func testFlags(t *testing.T, set map[string]string) func(string) *flag.Flag {
	t.Helper()
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	for _, name := range filterFlags {
		fs.String(name, "", "")
	}
	fs.Bool("test.short", false, "")
	for k, v := range set {
		if err := fs.Set(k, v); err != nil {
			t.Fatal(err)
		}
	}
	return fs.Lookup
}

func TestDecide(t *testing.T) {
	output := Component{Name: "output", Services: []string{"Kinesis"}, Policies: []PolicyCheck{{File: "output.json"}}}
	all := []string{"DescribeStreamSummary", "ListShards", "PutRecord", "PutRecords"}
	cases := []struct {
		name    string
		flags   map[string]string
		calls   []string // Kinesis operations, answered
		failed  []string // Kinesis operations, failed
		ci      bool
		want    int
		wantOut string
	}{
		{name: "whole suite, every action called", calls: all, want: 0, wantOut: "passed"},
		{name: "a failed call counts as called", calls: all[:3], failed: all[3:], want: 0, wantOut: "passed"},
		{name: "whole suite, an action never called", calls: all[:3], want: 1, wantOut: "kinesis:PutRecords is allowed but never called"},
		{name: "an action called that is not allowed", calls: append([]string{"DescribeStream"}, all...), want: 1, wantOut: "kinesis:DescribeStream is called but not allowed"},
		{name: "-run: not checked", flags: map[string]string{"test.run": "TestX"}, calls: all[:1], want: 0, wantOut: "not run (-run=TestX"},
		{name: "-skip: not checked", flags: map[string]string{"test.skip": "TestX"}, calls: all[:1], want: 0, wantOut: "not run (-skip=TestX"},
		{name: "-short: not checked", flags: map[string]string{"test.short": "true"}, calls: all[:1], want: 0, wantOut: "not run (-short"},
		{name: "no emulator: not checked", failed: all, want: 0, wantOut: "no Kinesis call was answered"},
		{name: "no emulator under CI: fails", failed: all, ci: true, want: 1, wantOut: "FAIL"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := NewRecorder()
			for _, op := range tc.calls {
				r.Add(awssession.Call{Service: "Kinesis", Operation: op})
			}
			for _, op := range tc.failed {
				r.Add(awssession.Call{Service: "Kinesis", Operation: op, Err: errors.New("refused")})
			}
			var out strings.Builder
			got := decide(output, r, testFlags(t, tc.flags), tc.ci, true, &out)
			if got != tc.want || !strings.Contains(out.String(), tc.wantOut) {
				t.Fatalf("decide = %d, printed %q; want %d and %q", got, out.String(), tc.want, tc.wantOut)
			}
		})
	}
}

// Quiet unless verbose: a filtered run prints nothing.
func TestDecideQuietWhenFiltered(t *testing.T) {
	var out strings.Builder
	got := decide(Component{Name: "x", Services: []string{"Kinesis"}}, NewRecorder(),
		testFlags(t, map[string]string{"test.run": "TestX"}), false, false, &out)
	if got != 0 || out.Len() != 0 {
		t.Fatalf("decide = %d, printed %q; want 0 and nothing", got, out.String())
	}
}

func TestRecorder(t *testing.T) {
	r := NewRecorder()
	r.Add(awssession.Call{Service: "DynamoDB", Operation: "PutItem"})
	r.Add(awssession.Call{Service: "DynamoDB", Operation: "PutItem", Err: errors.New("throttled")})
	r.Add(awssession.Call{Service: "Kinesis", Operation: "GetRecords", Err: errors.New("denied")})
	if got, want := strings.Join(r.Actions(), ","), "dynamodb:PutItem,kinesis:GetRecords"; got != want {
		t.Errorf("actions %s, want %s", got, want)
	}
	if r.Answered("DynamoDB") != 1 || r.Answered("Kinesis") != 0 {
		t.Errorf("answered: DynamoDB %d, Kinesis %d; want 1 and 0", r.Answered("DynamoDB"), r.Answered("Kinesis"))
	}
}

func TestAction(t *testing.T) {
	for _, tc := range []struct{ service, op, want string }{
		{"Kinesis", "SubscribeToShard", "kinesis:SubscribeToShard"},
		{"DynamoDB", "UpdateItem", "dynamodb:UpdateItem"},
		{"KMS", "Decrypt", "kms:Decrypt"},
	} {
		if got := Action(tc.service, tc.op); got != tc.want {
			t.Errorf("Action(%q, %q) = %q, want %q", tc.service, tc.op, got, tc.want)
		}
	}
}
