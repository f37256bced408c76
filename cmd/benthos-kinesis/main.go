// Command benthos-kinesis is a Benthos distribution with this project's
// aws_kinesis input and output, the core pure and io components and a
// Prometheus metrics exporter. It runs the standard Benthos CLI (run, lint,
// list, create, test, streams).
package main

import (
	"context"
	"fmt"
	"runtime"
	"runtime/debug"

	_ "github.com/redpanda-data/benthos/v4/public/components/io"
	_ "github.com/redpanda-data/benthos/v4/public/components/pure"
	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/benthos-kinesis/benthos-kinesis/internal/components"
	"github.com/benthos-kinesis/benthos-kinesis/internal/opscli"
)

// Set at build time by the Makefile, resources/dev/dist.sh and the
// Dockerfile (-ldflags -X). Empty ones are filled from the build info the Go
// toolchain embeds (see stamps).
var (
	version   = ""
	commit    = ""
	dateBuilt = ""
)

// benthosModule is the module whose version --version reports as Benthos'.
const benthosModule = "github.com/redpanda-data/benthos/v4"

func main() {
	if err := components.Register(service.GlobalEnvironment()); err != nil {
		panic(err)
	}
	info, _ := debug.ReadBuildInfo()
	b := stamps(info, version, commit, dateBuilt)
	service.RunCLI(context.Background(),
		service.CLIOptSetBinaryName("benthos-kinesis"),
		service.CLIOptSetProductName("benthos-kinesis"),
		service.CLIOptSetVersion(b.versionLine(), b.Date),
		service.CLIOptAddCommand(opscli.Command()),
	)
}

// build is what --version reports.
type build struct {
	Version string // the release, e.g. v0.1.0 (git describe)
	Commit  string // the source commit, with -dirty for a modified tree
	Date    string // when the binary was built (RFC 3339, UTC)
	Benthos string // the Benthos module's version
	Go      string // the Go toolchain that built the binary
}

// versionLine is the version string given to Benthos. Benthos prints it as
// "Version: <line>\nDate: <date>" for --version, and also uses it in its logs
// (benthos_version) and at the HTTP server's /version endpoint, so it must
// stay on one line: the commit, Benthos and Go versions follow in brackets.
func (b build) versionLine() string {
	return fmt.Sprintf("%s (commit %s, benthos %s, %s)", b.Version, b.Commit, b.Benthos, b.Go)
}

// stamps completes the -ldflags values with what the toolchain embedded:
// `go install ...@v0.1.0` sets the main module's version and no ldflags; a
// `go build` in a clone sets vcs.revision and vcs.modified, and the main
// module's version from the tag or a pseudo-version (Go 1.24 and later; not
// with -buildvcs=false). info may be nil (no build info).
func stamps(info *debug.BuildInfo, version, commit, date string) build {
	b := build{Version: version, Commit: commit, Date: date, Benthos: "unknown", Go: runtime.Version()}
	if info != nil {
		if b.Version == "" && info.Main.Version != "" && info.Main.Version != "(devel)" {
			b.Version = info.Main.Version
		}
		for _, dep := range info.Deps {
			if dep.Path != benthosModule {
				continue
			}
			b.Benthos = dep.Version
			if dep.Replace != nil && dep.Replace.Version != "" {
				b.Benthos = dep.Replace.Version + " (replaced)"
			}
		}
		var revision string
		var modified bool
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				revision = s.Value
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
		if b.Commit == "" && revision != "" {
			b.Commit = shortRevision(revision)
			if modified {
				b.Commit += "-dirty"
			}
		}
		if info.GoVersion != "" {
			b.Go = info.GoVersion
		}
	}
	if b.Version == "" {
		b.Version = "dev"
	}
	if b.Commit == "" {
		b.Commit = "unknown"
	}
	if b.Date == "" {
		b.Date = "unknown"
	}
	return b
}

// shortRevision abbreviates a git commit hash the way git describe does.
func shortRevision(rev string) string {
	const n = 12
	if len(rev) > n {
		return rev[:n]
	}
	return rev
}
