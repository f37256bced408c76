package main

import (
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
)

func TestStamps(t *testing.T) {
	benthos := debug.Module{Path: benthosModule, Version: "v4.78.0"}
	cases := []struct {
		name                  string
		info                  *debug.BuildInfo
		version, commit, date string
		want                  build
	}{
		{
			name:    "ldflags win over the build info",
			info:    &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v0.0.9"}, Deps: []*debug.Module{&benthos}, Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "ffffffffffffffffffffffffffffffffffffffff"}}},
			version: "v0.1.0", commit: "0123456789ab", date: "2026-12-06T10:00:00Z",
			want: build{Version: "v0.1.0", Commit: "0123456789ab", Date: "2026-12-06T10:00:00Z", Benthos: "v4.78.0", Go: "go1.26.8"},
		},
		{
			name: "go install of a tagged module: its version, no commit",
			info: &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v0.1.0"}, Deps: []*debug.Module{&benthos}},
			want: build{Version: "v0.1.0", Commit: "unknown", Date: "unknown", Benthos: "v4.78.0", Go: "go1.26.8"},
		},
		{
			name: "go build in a modified clone: devel, the revision marked dirty",
			info: &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"}, Deps: []*debug.Module{&benthos}, Settings: []debug.BuildSetting{
				{Key: "vcs.revision", Value: "361f911a2b3c4d5e6f708192a3b4c5d6e7f80912"}, {Key: "vcs.modified", Value: "true"},
			}},
			want: build{Version: "dev", Commit: "361f911a2b3c-dirty", Date: "unknown", Benthos: "v4.78.0", Go: "go1.26.8"},
		},
		{
			name: "Benthos replaced by a fork",
			info: &debug.BuildInfo{GoVersion: "go1.26.8", Deps: []*debug.Module{{Path: benthosModule, Version: "v4.78.0", Replace: &debug.Module{Path: "example.com/fork", Version: "v4.78.1-fork"}}}},
			want: build{Version: "dev", Commit: "unknown", Date: "unknown", Benthos: "v4.78.1-fork (replaced)", Go: "go1.26.8"},
		},
		{
			name: "no build info",
			want: build{Version: "dev", Commit: "unknown", Date: "unknown", Benthos: "unknown", Go: runtime.Version()},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := stamps(c.info, c.version, c.commit, c.date); got != c.want {
				t.Fatalf("stamps = %+v, want %+v", got, c.want)
			}
		})
	}
}

// ownBenthosVersion is the Benthos version this test binary was built with,
// which the binary under test was built with too.
func ownBenthosVersion(t *testing.T) string {
	t.Helper()
	info, ok := debug.ReadBuildInfo()
	if !ok {
		t.Fatal("the test binary has no build info")
	}
	for _, d := range info.Deps {
		if d.Path == benthosModule {
			return d.Version
		}
	}
	t.Fatalf("%s is not among the test binary's dependencies", benthosModule)
	return ""
}

// TestVersionFlag builds the binary as the Makefile and dist.sh do, with the
// stamps in -ldflags, and checks that --version prints all five of them.
func TestVersionFlag(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "benthos-kinesis")
	ldflags := "-X main.version=v9.8.7-test -X main.commit=0123456789ab-dirty -X main.dateBuilt=2026-12-06T10:11:12Z"
	if out, err := exec.Command("go", "build", "-ldflags", ldflags, "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build with ldflags: %v\n%s", err, out)
	}
	for _, flag := range []string{"--version", "-v"} {
		t.Run(flag, func(t *testing.T) {
			out, err := exec.Command(bin, flag).CombinedOutput()
			if err != nil {
				t.Fatalf("%s: %v\n%s", flag, err, out)
			}
			want := "Version: v9.8.7-test (commit 0123456789ab-dirty, benthos " + ownBenthosVersion(t) + ", " + runtime.Version() + ")\n" +
				"Date: 2026-12-06T10:11:12Z\n"
			if string(out) != want {
				t.Fatalf("%s printed\n%q\nwant\n%q", flag, out, want)
			}
		})
	}
}

// TestVersionWithoutLdflags: a plain `go build` in a clone still reports a
// commit from the toolchain's VCS stamp, and the Benthos and Go versions.
// -buildvcs=auto is explicit because GOFLAGS may turn the stamp off.
func TestVersionWithoutLdflags(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "benthos-kinesis")
	if out, err := exec.Command("go", "build", "-buildvcs=auto", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	outb, err := exec.Command(bin, "--version").CombinedOutput()
	out := string(outb)
	if err != nil {
		t.Fatalf("--version: %v\n%s", err, out)
	}
	// The version is the one the toolchain derives from git (Go 1.24 and
	// later: the tag, or a pseudo-version such as
	// v0.0.0-20261206123529-361f911f4def+dirty), dev outside a checkout; the
	// commit is unknown only outside a checkout.
	re := regexp.MustCompile(`^Version: (?:v\S+|dev) \(commit ([0-9a-f]{12}(-dirty)?|unknown), benthos (v\S+), (go\S+)\)\nDate: unknown\n$`)
	m := re.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("--version printed %q, not matching %s", out, re)
	}
	if m[3] != ownBenthosVersion(t) || m[4] != runtime.Version() {
		t.Fatalf("--version printed benthos %s and %s, want %s and %s", m[3], m[4], ownBenthosVersion(t), runtime.Version())
	}
	if _, err := exec.Command("git", "rev-parse", "HEAD").Output(); err == nil && strings.Contains(out, "commit unknown") {
		t.Fatalf("built inside a git checkout, yet --version printed no commit: %q", out)
	}
}
