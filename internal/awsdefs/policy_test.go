package awsdefs

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

func TestParsePolicy(t *testing.T) {
	cases := []struct {
		name    string
		doc     string
		actions []string
		wantErr string // "" : parses
	}{
		{
			name:    "one statement, one action",
			doc:     `{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"kinesis:ListShards","Resource":"arn:x"}}`,
			actions: []string{"kinesis:ListShards"},
		},
		{
			name: "lists, duplicates across statements counted once",
			doc: `{"Version":"2012-10-17","Statement":[
				{"Sid":"A","Effect":"Allow","Action":["kinesis:ListShards","kinesis:GetRecords"],"Resource":["arn:x"]},
				{"Sid":"B","Effect":"Allow","Action":["kinesis:ListShards"],"Resource":["arn:y"],"Condition":{"StringEquals":{"k":"v"}}}]}`,
			actions: []string{"kinesis:GetRecords", "kinesis:ListShards"},
		},
		{name: "old version", doc: `{"Version":"2008-10-17","Statement":{"Effect":"Allow","Action":"a:b","Resource":"r"}}`, wantErr: "Version"},
		{name: "deny", doc: `{"Version":"2012-10-17","Statement":{"Effect":"Deny","Action":"a:b","Resource":"r"}}`, wantErr: "want Allow"},
		{name: "NotAction", doc: `{"Version":"2012-10-17","Statement":{"Effect":"Allow","NotAction":"a:b","Resource":"r"}}`, wantErr: "NotAction"},
		{name: "NotResource", doc: `{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"a:b","NotResource":"r"}}`, wantErr: "NotAction"},
		{name: "wildcard action", doc: `{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"kinesis:Get*","Resource":"r"}}`, wantErr: "wildcard"},
		{name: "action without service", doc: `{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"GetRecords","Resource":"r"}}`, wantErr: "service:Operation"},
		{name: "no resource", doc: `{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"a:b"}}`, wantErr: "no Resource"},
		{name: "no action", doc: `{"Version":"2012-10-17","Statement":{"Effect":"Allow","Resource":"r"}}`, wantErr: "no Action"},
		{name: "no statement", doc: `{"Version":"2012-10-17"}`, wantErr: "no Statement"},
		{name: "unknown field", doc: `{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"a:b","Resource":"r","Principal":"*"}}`, wantErr: "unknown field"},
		{name: "action not a string", doc: `{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":3,"Resource":"r"}}`, wantErr: "string"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, err := ParsePolicy("test.json", []byte(tc.doc))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(p.Actions(), tc.actions) {
				t.Fatalf("actions %v, want %v", p.Actions(), tc.actions)
			}
		})
	}
}

// resourcePatterns are the resources each service's actions may name: ARNs with the placeholders
// the README tells the reader to replace, never a wildcard of a whole service.
var resourcePatterns = map[string]*regexp.Regexp{
	"kinesis":  regexp.MustCompile(`^arn:aws:kinesis:REGION:ACCOUNT:stream/STREAM(/consumer/CONSUMER:\*)?$`),
	"dynamodb": regexp.MustCompile(`^arn:aws:dynamodb:REGION:ACCOUNT:table/TABLE$`),
	"kms":      regexp.MustCompile(`^arn:aws:kms:REGION:ACCOUNT:key/KEY_ID$`),
}

// Every policy shipped parses, names its resources with the placeholders, gives each statement a
// Sid (the README refers to them) and is described in the README.
func TestShippedPolicies(t *testing.T) {
	dir, err := ResourcesDir()
	if err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob(filepath.Join(dir, "iam", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"input-fanout.json", "input-polling.json", "kms.json", "output.json"}
	var names []string
	for _, f := range files {
		names = append(names, filepath.Base(f))
	}
	if !slices.Equal(names, want) {
		t.Fatalf("resources/iam holds %v, want %v (a new policy needs its checks here and in the README)", names, want)
	}
	readme, err := os.ReadFile(filepath.Join(dir, "iam", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			p, err := LoadPolicy(name)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(readme), name) {
				t.Errorf("README.md does not describe %s", name)
			}
			for _, s := range p.Statements {
				if s.Sid == "" {
					t.Errorf("a statement has no Sid: %v", s.Actions)
				}
				for _, a := range s.Actions {
					svc, _, _ := strings.Cut(a, ":")
					pat := resourcePatterns[svc]
					if pat == nil {
						t.Errorf("%s: service %s has no resource pattern here", a, svc)
						continue
					}
					for _, r := range s.Resources {
						if !pat.MatchString(r) {
							t.Errorf("statement %s: %s on resource %q, want one matching %s", s.Sid, a, r, pat)
						}
					}
				}
			}
		})
	}
}

// The fan-out policy is the polling policy plus the fan-out actions, and nothing else; CreateTable
// stands alone in its statement in both, so that a reader with dynamodb.create: false can drop it.
func TestInputPoliciesAgree(t *testing.T) {
	polling, err := LoadPolicy("input-polling.json")
	if err != nil {
		t.Fatal(err)
	}
	fanout, err := LoadPolicy("input-fanout.json")
	if err != nil {
		t.Fatal(err)
	}
	want := slices.Concat(polling.Actions(), []string{
		"kinesis:DescribeStreamConsumer", "kinesis:ListStreamConsumers", "kinesis:RegisterStreamConsumer", "kinesis:SubscribeToShard",
	})
	slices.Sort(want)
	if got := fanout.Actions(); !slices.Equal(got, want) {
		t.Fatalf("input-fanout.json allows %v, want %v", got, want)
	}
	for _, p := range []Policy{polling, fanout} {
		s, ok := p.Statement("CreateLeaseTable")
		if !ok || !slices.Equal(s.Actions, []string{"dynamodb:CreateTable"}) {
			t.Errorf("%s: statement CreateLeaseTable is %+v, want dynamodb:CreateTable alone", p.File, s)
		}
		for _, s := range p.Statements {
			if s.Sid != "CreateLeaseTable" && slices.Contains(s.Actions, "dynamodb:CreateTable") {
				t.Errorf("%s: statement %s also allows dynamodb:CreateTable", p.File, s.Sid)
			}
		}
	}
}

// KMS is not called by the components (Kinesis calls it for them), so the recording cannot check
// kms.json: this pins what each component needs on an encrypted stream, as the AWS documentation
// of server-side encryption says: the reader decrypts, the writer generates data keys.
func TestKMSPolicy(t *testing.T) {
	p, err := LoadPolicy("kms.json")
	if err != nil {
		t.Fatal(err)
	}
	for sid, action := range map[string]string{"InputDecrypt": "kms:Decrypt", "OutputGenerateDataKey": "kms:GenerateDataKey"} {
		s, ok := p.Statement(sid)
		if !ok || !slices.Equal(s.Actions, []string{action}) {
			t.Errorf("statement %s is %+v, want %s alone", sid, s, action)
			continue
		}
		if got := s.Condition["StringEquals"]["kms:ViaService"]; got != "kinesis.REGION.amazonaws.com" {
			t.Errorf("statement %s: kms:ViaService %v, want the key usable only through Kinesis", sid, got)
		}
	}
	if len(p.Statements) != 2 {
		t.Errorf("%d statements, want 2", len(p.Statements))
	}
}
