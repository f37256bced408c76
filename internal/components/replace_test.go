package components

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	// The core components every distribution has: our specs' lint rules use
	// their Bloblang functions, and the resource builder their tracer.
	_ "github.com/redpanda-data/benthos/v4/public/components/pure"
	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/benthos-kinesis/benthos-kinesis/plugin/input"
	"github.com/benthos-kinesis/benthos-kinesis/plugin/output"
)

// What an embedder does (docs/EMBEDDING.md): a distribution that already has
// an aws_kinesis input and output (Redpanda Connect's built-ins) registers
// ours under the same name. These tests stand a dummy in for the built-ins
// and show what Benthos does with the second registration.

// The dummy built-ins have one field ours lack, and ours have fields they
// lack (deaggregate, order_per_key, aggregation...).
const builtinOnlyField = "builtin_only"

var errDummyBuilt = errors.New("the dummy built-in's constructor was called")

func registerDummyBuiltins(t *testing.T, env *service.Environment) {
	t.Helper()
	spec := func() *service.ConfigSpec {
		return service.NewConfigSpec().Field(service.NewStringField(builtinOnlyField).Default(""))
	}
	if err := env.RegisterBatchInput("aws_kinesis", spec(),
		func(*service.ParsedConfig, *service.Resources) (service.BatchInput, error) {
			return nil, errDummyBuilt
		}); err != nil {
		t.Fatalf("register dummy input: %v", err)
	}
	if err := env.RegisterBatchOutput("aws_kinesis", spec(),
		func(*service.ParsedConfig, *service.Resources) (service.BatchOutput, service.BatchPolicy, int, error) {
			return nil, service.BatchPolicy{}, 0, errDummyBuilt
		}); err != nil {
		t.Fatalf("register dummy output: %v", err)
	}
}

func registerOurs(t *testing.T, env *service.Environment) {
	t.Helper()
	if err := input.Register(env, "aws_kinesis"); err != nil {
		t.Fatalf("register our input over the dummy: %v", err)
	}
	if err := output.Register(env, "aws_kinesis"); err != nil {
		t.Fatalf("register our output over the dummy: %v", err)
	}
}

// fieldNames lists the full names of the config fields of the aws_kinesis
// input or output as env documents them (what `list`, `create` and lint
// use); nil when there is none.
//
// It walks the environment: env.GetInputConfig and GetOutputConfig (Benthos
// v4.78.0) look in the global registry whatever the environment, so they
// would not see a registration on this one.
func fieldNames(t *testing.T, env *service.Environment, kind string) []string {
	t.Helper()
	walk := env.WalkInputs
	if kind == "output" {
		walk = env.WalkOutputs
	}
	var view *service.ConfigView
	walk(func(name string, v *service.ConfigView) {
		if name == "aws_kinesis" {
			view = v
		}
	})
	if view == nil {
		return nil
	}
	data, err := view.TemplateData()
	if err != nil {
		t.Fatalf("template data: %v", err)
	}
	var names []string
	for _, f := range data.Fields {
		names = append(names, f.FullName)
	}
	return names
}

// Configs that only one side accepts (only linted, never run).
const (
	oursInputYAML = `aws_kinesis:
  streams: [ embed-demo ]
  dynamodb: { table: embed-demo-leases }
  deaggregate: false
  max_moves_per_rebalance: 2
`
	oursOutputYAML = `aws_kinesis:
  stream: embed-demo
  partition_key: static-key
  order_per_key: true
  aggregation: { enabled: true }
`
	builtinYAML = "aws_kinesis:\n  " + builtinOnlyField + ": x\n"
)

func lintErrors(t *testing.T, env *service.Environment, kind, yaml string) []string {
	t.Helper()
	linter := env.NewComponentConfigLinter()
	var lints []service.Lint
	var err error
	switch kind {
	case "input":
		lints, err = linter.LintInputYAML([]byte(yaml))
	case "output":
		lints, err = linter.LintOutputYAML([]byte(yaml))
	default:
		t.Fatalf("unknown kind %q", kind)
	}
	if err != nil {
		t.Fatalf("lint %s: %v", kind, err)
	}
	var out []string
	for _, l := range lints {
		out = append(out, l.Error())
	}
	return out
}

// Configs that pass the spec but that only our constructors reject, with
// the message they give: which constructor ran shows in the error, and none
// gets to connect anywhere.
var ctorRejects = map[string]struct{ yaml, ourError string }{
	"input": {
		yaml:     "aws_kinesis:\n  streams: [ embed-demo, \"embed-demo-2:1\" ]\n  dynamodb: { table: embed-demo-leases }\n",
		ourError: "cannot be mixed",
	},
	"output": {
		yaml:     "aws_kinesis:\n  stream: embed-demo\n  partition_key: k\n  shard_limits: { records_per_second: 0 }\n",
		ourError: "shard_limits.records_per_second must be greater than zero",
	},
}

// constructErr constructs the component as a resource, which runs the
// constructor registered under aws_kinesis, and returns its error (resources
// are built lazily, on first access).
func constructErr(t *testing.T, env *service.Environment, kind, yaml string) error {
	t.Helper()
	rb := env.NewResourceBuilder()
	rb.DisableLinting() // the constructor, not the linter, is under test
	var err error
	if kind == "input" {
		err = rb.AddInputYAML("label: under_test\n" + yaml)
	} else {
		err = rb.AddOutputYAML("label: under_test\n" + yaml)
	}
	if err != nil {
		t.Fatalf("add %s: %v", kind, err)
	}
	res, stop, err := rb.BuildSuspended()
	if err != nil {
		t.Fatalf("build the resources: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if kind == "input" {
		err = res.AccessInput(ctx, "under_test", func(*service.ResourceInput) {})
	} else {
		err = res.AccessOutput(ctx, "under_test", func(*service.ResourceOutput) {})
	}
	if err == nil {
		// Not reached by these tests' configs; a built output resource that
		// is suspended would not finish closing (Benthos v4.78.0).
		t.Fatalf("the %s was constructed: want a constructor error", kind)
	}
	if serr := stop(ctx); serr != nil {
		t.Fatalf("stop the resources: %v", serr)
	}
	return err
}

func TestRegisterOverExistingName(t *testing.T) {
	cases := []struct {
		name  string
		setup func(t *testing.T, env *service.Environment)
		// Whose component the environment holds under aws_kinesis afterwards.
		oursWin bool
	}{
		{
			name:    "ours registered after the built-in replace it",
			setup:   func(t *testing.T, env *service.Environment) { registerDummyBuiltins(t, env); registerOurs(t, env) },
			oursWin: true,
		},
		{
			// The reason docs/EMBEDDING.md says to call Register in main, after
			// the built-ins' packages have run their init functions.
			name:    "a built-in registered after ours replaces ours: the last registration wins",
			setup:   func(t *testing.T, env *service.Environment) { registerOurs(t, env); registerDummyBuiltins(t, env) },
			oursWin: false,
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			env := service.NewEnvironment()
			c.setup(t, env)

			inFields := fieldNames(t, env, "input")
			outFields := fieldNames(t, env, "output")
			for _, check := range []struct {
				kind   string
				fields []string
				ours   string // a field only ours has
			}{
				{"input", inFields, "deaggregate"},
				{"input", inFields, "dynamodb.max_in_flight"},
				{"output", outFields, "order_per_key"},
				{"output", outFields, "aggregation.enabled"},
			} {
				if got := slices.Contains(check.fields, check.ours); got != c.oursWin {
					t.Errorf("%s spec has %s: %v, want %v (fields %v)", check.kind, check.ours, got, c.oursWin, check.fields)
				}
				if got := slices.Contains(check.fields, builtinOnlyField); got == c.oursWin {
					t.Errorf("%s spec has the dummy's %s: %v, want %v", check.kind, builtinOnlyField, got, !c.oursWin)
				}
			}

			// Exactly one aws_kinesis of each kind: replaced, not listed twice.
			for kind, walk := range map[string]func(func(string, *service.ConfigView)){
				"input": env.WalkInputs, "output": env.WalkOutputs,
			} {
				n := 0
				walk(func(name string, _ *service.ConfigView) {
					if name == "aws_kinesis" {
						n++
					}
				})
				if n != 1 {
					t.Errorf("%d %ss named aws_kinesis listed, want 1", n, kind)
				}
			}

			// Lint: our configs are clean exactly when ours won; the dummy's
			// config exactly when it did.
			for _, l := range []struct{ kind, yaml string }{
				{"input", oursInputYAML}, {"output", oursOutputYAML},
			} {
				if lints := lintErrors(t, env, l.kind, l.yaml); (len(lints) == 0) != c.oursWin {
					t.Errorf("our %s config: lints %v, ours registered: %v", l.kind, lints, c.oursWin)
				}
				if lints := lintErrors(t, env, l.kind, builtinYAML); (len(lints) == 0) == c.oursWin {
					t.Errorf("the dummy's %s config: lints %v, ours registered: %v", l.kind, lints, c.oursWin)
				}
			}

			// The constructor that runs is the winner's.
			for _, kind := range []string{"input", "output"} {
				err := constructErr(t, env, kind, ctorRejects[kind].yaml)
				want := errDummyBuilt.Error()
				if c.oursWin {
					want = ctorRejects[kind].ourError
				}
				if !strings.Contains(err.Error(), want) {
					t.Errorf("constructing the %s: %v, want an error containing %q", kind, err, want)
				}
			}
		})
	}
}

// Registering on one environment leaves its clones and the global
// environment alone: an embedder must register on the environment its CLI or
// stream builder uses (service.GlobalEnvironment() for service.RunCLI).
func TestRegisterIsPerEnvironment(t *testing.T) {
	base := service.NewEnvironment()
	registerDummyBuiltins(t, base)
	clone := base.Clone()
	registerOurs(t, base)

	if !slices.Contains(fieldNames(t, base, "input"), "deaggregate") {
		t.Error("the environment registered on does not hold our input")
	}
	if fields := fieldNames(t, clone, "input"); slices.Contains(fields, "deaggregate") || !slices.Contains(fields, builtinOnlyField) {
		t.Errorf("a clone taken before Register: fields %v, want the dummy's", fields)
	}
	if slices.Contains(fieldNames(t, service.GlobalEnvironment(), "input"), "deaggregate") {
		t.Error("the global environment holds our input, registered only on a new one")
	}
}
