package fielddoc

import (
	"bytes"
	"os"
	"strconv"
	"strings"
	"testing"
)

// committed is the generated file, relative to this package.
const committed = "../../docs/FIELDS.md"

// docs/FIELDS.md is what the specs generate now; UPDATE=1 rewrites it.
func TestFieldsMarkdownUpToDate(t *testing.T) {
	md, err := Markdown()
	if err != nil {
		t.Fatal(err)
	}
	md = append(md, '\n')
	if os.Getenv("UPDATE") == "1" {
		if err := os.WriteFile(committed, md, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	have, err := os.ReadFile(committed)
	if err != nil {
		t.Fatalf("%v: generate it with go generate ./internal/fielddoc", err)
	}
	if !bytes.Equal(have, md) {
		t.Fatalf("docs/FIELDS.md is out of date with the specs: regenerate it with go generate ./internal/fielddoc (or UPDATE=1 go test ./internal/fielddoc)\n%s", firstDiff(string(have), string(md)))
	}
}

// firstDiff shows the first line where have and want differ.
func firstDiff(have, want string) string {
	h, w := strings.Split(have, "\n"), strings.Split(want, "\n")
	for i := 0; i < max(len(h), len(w)); i++ {
		var hl, wl string
		if i < len(h) {
			hl = h[i]
		}
		if i < len(w) {
			wl = w[i]
		}
		if hl != wl {
			return "line " + strconv.Itoa(i+1) + ":\n  file:  " + hl + "\n  specs: " + wl
		}
	}
	return ""
}

// The reference names every field of both components with its type,
// default and advanced flag, as the specs say.
func TestMarkdownRows(t *testing.T) {
	md, err := Markdown()
	if err != nil {
		t.Fatal(err)
	}
	for _, row := range []string{
		"| [`streams`](#input-aws-kinesis-streams) | array of string | none (required) |  |",
		"| [`dynamodb.table`](#input-aws-kinesis-dynamodb-table) | string | `\"\"` |  |",
		"| [`poll_period`](#input-aws-kinesis-poll-period) | duration | `\"0s\"` | yes |",
		"| [`enhanced_fan_out.enabled`](#input-aws-kinesis-enhanced-fan-out-enabled) | bool | `false` | yes |",
		"| [`enhanced_fan_out.max_resubscribe_interval`](#input-aws-kinesis-enhanced-fan-out-max-resubscribe-interval) | duration | `\"30s\"` | yes |",
		"| [`credentials.profile`](#input-aws-kinesis-credentials-profile) | string | `\"\"` | yes |",
		"| [`batching.processors`](#input-aws-kinesis-batching-processors) | array of processor | none (optional) | yes |",
		"| [`stream`](#output-aws-kinesis-stream) | string | none (required) |  |",
		"| [`hash_key`](#output-aws-kinesis-hash-key) | string | `\"\"` | yes |",
		"| [`shard_limits.records_per_second`](#output-aws-kinesis-shard-limits-records-per-second) | int | `1000` | yes |",
	} {
		if !strings.Contains(string(md), "\n"+row+"\n") {
			t.Errorf("no row %s", row)
		}
	}
	for _, gone := range []string{"### `poll.min_interval`", "xref:"} {
		if strings.Contains(string(md), gone) {
			t.Errorf("the reference holds %q", gone)
		}
	}
}

func TestFieldText(t *testing.T) {
	def := func(v any) *any { return &v }
	for _, c := range []struct {
		name          string
		f             field
		typ, defaults string
	}{
		{"duration", field{Type: "string", Kind: "scalar", Default: def("3.5s")}, "duration", "`\"3.5s\"`"},
		{"empty string", field{Type: "string", Kind: "scalar", Default: def("")}, "string", "`\"\"`"},
		{"a string that is no duration", field{Type: "string", Default: def("PAY_PER_REQUEST")}, "string", "`\"PAY_PER_REQUEST\"`"},
		{"required list", field{Type: "string", Kind: "array"}, "array of string", "none (required)"},
		{"optional", field{Type: "string", Optional: true}, "string", "none (optional)"},
		{"object", field{Type: "object", Children: []field{{Name: "a"}}}, "object", ""},
		{"map", field{Type: "string", Kind: "map", Default: def(map[string]any{})}, "map of string", "`{}`"},
		{"int", field{Type: "int", Default: def(float64(1048576))}, "int", "`1048576`"},
	} {
		if got := c.f.typeName(); got != c.typ {
			t.Errorf("%s: type %q, want %q", c.name, got, c.typ)
		}
		if got := c.f.defaultText(); got != c.defaults {
			t.Errorf("%s: default %q, want %q", c.name, got, c.defaults)
		}
	}
}

func TestFlattenAndProse(t *testing.T) {
	got := flatten("", []field{
		{Name: "a", Children: []field{{Name: "b"}, {Name: "old", Deprecated: true}}},
		{Name: "list", Kind: "array", Children: []field{{Name: "c"}}},
		{Name: "m", Kind: "map", Children: []field{{Name: "d"}}},
	})
	var paths []string
	for _, f := range got {
		paths = append(paths, f.path)
	}
	if want := "a a.b list list[].c m m.<name>.d"; strings.Join(paths, " ") != want {
		t.Errorf("paths %q, want %q", strings.Join(paths, " "), want)
	}
	if got, want := prose("\nSee xref:configuration:batching.adoc[batching policy] and `x`. "), "See batching policy and `x`."; got != want {
		t.Errorf("prose %q, want %q", got, want)
	}
	if got, want := anchor("input aws_kinesis dynamodb.table"), "input-aws-kinesis-dynamodb-table"; got != want {
		t.Errorf("anchor %q, want %q", got, want)
	}
}
