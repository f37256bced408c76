package awsdefs

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"gopkg.in/yaml.v3"

	"github.com/benthos-kinesis/benthos-kinesis/checkpointer"
	"github.com/benthos-kinesis/benthos-kinesis/internal/testenv"
)

// tableShape is what the templates must agree on with dynamodb.create: the key schema (in order,
// "name TYPE") and the type of each attribute defined.
type tableShape struct {
	keys  []string
	attrs map[string]string
}

func (s tableShape) String() string {
	names := slices.Sorted(maps.Keys(s.attrs))
	var attrs []string
	for _, n := range names {
		attrs = append(attrs, n+" "+s.attrs[n])
	}
	return fmt.Sprintf("keys %v, attributes %v", s.keys, attrs)
}

func (s tableShape) equal(o tableShape) bool {
	return slices.Equal(s.keys, o.keys) && maps.Equal(s.attrs, o.attrs)
}

// createdTable makes a table with the input's own code (checkpointer.Table.EnsureTable, what
// dynamodb.create runs) in dynalite and describes it.
func createdTable(t *testing.T, billingMode string, rcu, wcu int64) *types.TableDescription {
	t.Helper()
	db := testenv.DynamoDB(t)
	name := testenv.UniqueName(t, "lease-table")
	tbl, err := checkpointer.New(db, name, "template-test")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := db.DeleteTable(ctx, &dynamodb.DeleteTableInput{TableName: aws.String(name)}); err != nil {
			t.Logf("delete table %s: %v", name, err)
		}
	})
	if err := tbl.EnsureTable(ctx, true, billingMode, rcu, wcu); err != nil {
		t.Fatal(err)
	}
	out, err := db.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(name)})
	if err != nil {
		t.Fatal(err)
	}
	return out.Table
}

func shapeOfDescription(d *types.TableDescription) tableShape {
	s := tableShape{attrs: map[string]string{}}
	for _, k := range d.KeySchema {
		s.keys = append(s.keys, aws.ToString(k.AttributeName)+" "+string(k.KeyType))
	}
	for _, a := range d.AttributeDefinitions {
		s.attrs[aws.ToString(a.AttributeName)] = string(a.AttributeType)
	}
	return s
}

// The table dynamodb.create makes, in both billing modes: the shape the templates are compared
// with, and nothing else on it (no index, no stream).
func TestCreatedTable(t *testing.T) {
	cases := []struct {
		mode     string
		rcu, wcu int64
	}{
		{mode: checkpointer.BillingPayPerRequest},
		{mode: checkpointer.BillingProvisioned, rcu: 5, wcu: 7},
	}
	want := tableShape{keys: []string{"StreamID HASH", "ShardID RANGE"}, attrs: map[string]string{"StreamID": "S", "ShardID": "S"}}
	for _, tc := range cases {
		t.Run(tc.mode, func(t *testing.T) {
			d := createdTable(t, tc.mode, tc.rcu, tc.wcu)
			if got := shapeOfDescription(d); !got.equal(want) {
				t.Errorf("dynamodb.create made %s, want %s (update the templates and this test together)", got, want)
			}
			if len(d.GlobalSecondaryIndexes)+len(d.LocalSecondaryIndexes) > 0 || d.StreamSpecification != nil {
				t.Errorf("dynamodb.create made indexes or a stream: %+v %+v %+v", d.GlobalSecondaryIndexes, d.LocalSecondaryIndexes, d.StreamSpecification)
			}
			if tc.mode == checkpointer.BillingProvisioned {
				pt := d.ProvisionedThroughput
				if pt == nil || aws.ToInt64(pt.ReadCapacityUnits) != tc.rcu || aws.ToInt64(pt.WriteCapacityUnits) != tc.wcu {
					t.Errorf("provisioned throughput %+v, want %d/%d", pt, tc.rcu, tc.wcu)
				}
			}
			if bm := d.BillingModeSummary; bm != nil && string(bm.BillingMode) != tc.mode {
				t.Errorf("billing mode %s, want %s", bm.BillingMode, tc.mode)
			}
		})
	}
}

func readTemplate(t *testing.T, name string) string {
	t.Helper()
	dir, err := ResourcesDir()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "table", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// The CloudFormation template: the created table's shape, dynamodb.create's billing modes with
// its default, capacities only with PROVISIONED, and no other table property.
func TestCloudFormationTemplate(t *testing.T) {
	created := shapeOfDescription(createdTable(t, checkpointer.BillingPayPerRequest, 0, 0))

	var tpl struct {
		Parameters map[string]struct {
			Type          string   `yaml:"Type"`
			Default       any      `yaml:"Default"`
			AllowedValues []string `yaml:"AllowedValues"`
		} `yaml:"Parameters"`
		Conditions map[string]any `yaml:"Conditions"`
		Resources  map[string]struct {
			Type       string         `yaml:"Type"`
			Properties map[string]any `yaml:"Properties"`
		} `yaml:"Resources"`
	}
	if err := yaml.Unmarshal([]byte(readTemplate(t, "lease-table.yaml")), &tpl); err != nil {
		t.Fatalf("lease-table.yaml: %v", err)
	}
	if len(tpl.Resources) != 1 || tpl.Resources["LeaseTable"].Type != "AWS::DynamoDB::Table" {
		t.Fatalf("resources %+v, want LeaseTable alone, an AWS::DynamoDB::Table", tpl.Resources)
	}
	props := tpl.Resources["LeaseTable"].Properties
	wantProps := []string{"AttributeDefinitions", "BillingMode", "KeySchema", "ProvisionedThroughput", "TableName"}
	if got := slices.Sorted(maps.Keys(props)); !slices.Equal(got, wantProps) {
		t.Errorf("table properties %v, want %v: dynamodb.create sets nothing else", got, wantProps)
	}

	got := tableShape{attrs: map[string]string{}}
	for _, k := range list(props["KeySchema"]) {
		m := k.(map[string]any)
		got.keys = append(got.keys, fmt.Sprint(m["AttributeName"], " ", m["KeyType"]))
	}
	for _, a := range list(props["AttributeDefinitions"]) {
		m := a.(map[string]any)
		got.attrs[fmt.Sprint(m["AttributeName"])] = fmt.Sprint(m["AttributeType"])
	}
	if !got.equal(created) {
		t.Errorf("lease-table.yaml defines %s; dynamodb.create makes %s", got, created)
	}

	bm := tpl.Parameters["BillingMode"]
	if bm.Default != checkpointer.BillingPayPerRequest ||
		!slices.Equal(bm.AllowedValues, []string{checkpointer.BillingPayPerRequest, checkpointer.BillingProvisioned}) {
		t.Errorf("BillingMode parameter %+v, want default %s, allowed %s and %s", bm, checkpointer.BillingPayPerRequest,
			checkpointer.BillingPayPerRequest, checkpointer.BillingProvisioned)
	}
	if fmt.Sprint(props["BillingMode"]) != "map[Ref:BillingMode]" || fmt.Sprint(props["TableName"]) != "map[Ref:TableName]" {
		t.Errorf("BillingMode %v, TableName %v: want the parameters", props["BillingMode"], props["TableName"])
	}
	wantIf := "map[Fn::If:[Provisioned map[ReadCapacityUnits:map[Ref:ReadCapacityUnits] WriteCapacityUnits:map[Ref:WriteCapacityUnits]] map[Ref:AWS::NoValue]]]"
	if got := fmt.Sprint(props["ProvisionedThroughput"]); got != wantIf {
		t.Errorf("ProvisionedThroughput %s, want %s", got, wantIf)
	}
	if got := fmt.Sprint(tpl.Conditions["Provisioned"]); got != "map[Fn::Equals:[map[Ref:BillingMode] PROVISIONED]]" {
		t.Errorf("condition Provisioned is %s, want BillingMode = PROVISIONED", got)
	}
}

func list(v any) []any {
	l, _ := v.([]any)
	return l
}

// tfBlock returns the body of the first block whose header matches header (the text between its
// braces, nested blocks included).
func tfBlock(t *testing.T, src, header string) string {
	t.Helper()
	i := strings.Index(src, header)
	if i < 0 {
		t.Fatalf("no %q in the Terraform file", header)
	}
	start := i + strings.Index(src[i:], "{") + 1
	depth := 1
	for j := start; j < len(src); j++ {
		switch src[j] {
		case '{':
			depth++
		case '}':
			depth--
			if depth == 0 {
				return src[start:j]
			}
		}
	}
	t.Fatalf("block %q is not closed", header)
	return ""
}

var (
	tfSetting   = regexp.MustCompile(`(?m)^  ([a-z_]+)\s*=\s*(.+)$`)
	tfBlockName = regexp.MustCompile(`(?m)^  ([a-z_]+)\s*\{`)
	tfAttribute = regexp.MustCompile(`attribute\s*\{\s*name\s*=\s*"([^"]+)"\s*type\s*=\s*"([^"]+)"\s*\}`)
)

// The Terraform file, checked as text (no HCL parser in the module graph): the same shape, the
// same billing modes and default, capacities only with PROVISIONED, and no other setting.
func TestTerraformTemplate(t *testing.T) {
	created := shapeOfDescription(createdTable(t, checkpointer.BillingPayPerRequest, 0, 0))
	src := readTemplate(t, "lease-table.tf")
	body := tfBlock(t, src, `resource "aws_dynamodb_table" "lease"`)

	settings := map[string]string{}
	for _, m := range tfSetting.FindAllStringSubmatch(body, -1) {
		settings[m[1]] = strings.TrimSpace(m[2])
	}
	wantSettings := map[string]string{
		"name":           "var.table_name",
		"billing_mode":   "var.billing_mode",
		"read_capacity":  `var.billing_mode == "PROVISIONED" ? var.read_capacity : null`,
		"write_capacity": `var.billing_mode == "PROVISIONED" ? var.write_capacity : null`,
		"hash_key":       `"StreamID"`,
		"range_key":      `"ShardID"`,
	}
	if !maps.Equal(settings, wantSettings) {
		t.Errorf("aws_dynamodb_table settings %v, want %v: dynamodb.create sets nothing else", settings, wantSettings)
	}
	var blocks []string
	for _, m := range tfBlockName.FindAllStringSubmatch(body, -1) {
		blocks = append(blocks, m[1])
	}
	if !slices.Equal(blocks, []string{"attribute", "attribute"}) {
		t.Errorf("aws_dynamodb_table blocks %v, want two attribute blocks and nothing else (no index, stream, ttl)", blocks)
	}

	got := tableShape{attrs: map[string]string{}}
	hash := strings.Trim(settings["hash_key"], `"`)
	rng := strings.Trim(settings["range_key"], `"`)
	got.keys = []string{hash + " HASH", rng + " RANGE"}
	for _, m := range tfAttribute.FindAllStringSubmatch(body, -1) {
		got.attrs[m[1]] = m[2]
	}
	if !got.equal(created) {
		t.Errorf("lease-table.tf defines %s; dynamodb.create makes %s", got, created)
	}

	mode := tfBlock(t, src, `variable "billing_mode"`)
	if !strings.Contains(mode, `default     = "`+checkpointer.BillingPayPerRequest+`"`) ||
		!strings.Contains(mode, `contains(["`+checkpointer.BillingPayPerRequest+`", "`+checkpointer.BillingProvisioned+`"], var.billing_mode)`) {
		t.Errorf("variable billing_mode does not default to %s and allow %s and %s only:\n%s", checkpointer.BillingPayPerRequest,
			checkpointer.BillingPayPerRequest, checkpointer.BillingProvisioned, mode)
	}
	for _, v := range []string{"table_name", "read_capacity", "write_capacity"} {
		tfBlock(t, src, `variable "`+v+`"`)
	}
}
