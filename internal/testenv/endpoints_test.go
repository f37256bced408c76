package testenv

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
)

func TestParseEnvFile(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    map[string]string
		wantErr string
	}{
		{
			name: "as up.sh writes it",
			in: "# Written by resources/emulators/up.sh; removed by down.sh.\n" +
				"export KINESIS_ENDPOINT=http://127.0.0.1:4567\n" +
				"export KINESIS_MOCK_ENDPOINT=http://127.0.0.1:4568\n" +
				"export DYNAMODB_ENDPOINT=http://127.0.0.1:4569\n",
			want: map[string]string{
				"KINESIS_ENDPOINT":      "http://127.0.0.1:4567",
				"KINESIS_MOCK_ENDPOINT": "http://127.0.0.1:4568",
				"DYNAMODB_ENDPOINT":     "http://127.0.0.1:4569",
			},
		},
		{name: "empty", in: "", want: map[string]string{}},
		{name: "comments and blank lines", in: "\n  # x=y\n\n", want: map[string]string{}},
		{name: "without export", in: "A=1\n", want: map[string]string{"A": "1"}},
		{name: "export with tab and spaces", in: "  export\tA=1  \n", want: map[string]string{"A": "1"}},
		{name: "spaces around equals are not shell", in: "A = 1\n", wantErr: "line 1"},
		{name: "double quotes", in: `export A="http://h:1/ x"`, want: map[string]string{"A": "http://h:1/ x"}},
		{name: "single quotes", in: `A='v # not a comment'`, want: map[string]string{"A": "v # not a comment"}},
		{name: "trailing comment", in: "A=v # comment\n", want: map[string]string{"A": "v"}},
		{name: "empty value", in: "A=\n", want: map[string]string{"A": ""}},
		{name: "value with equals", in: "A=x=y\n", want: map[string]string{"A": "x=y"}},
		{name: "later wins", in: "A=1\nA=2\n", want: map[string]string{"A": "2"}},
		{name: "CRLF", in: "A=1\r\nB=2\r\n", want: map[string]string{"A": "1", "B": "2"}},
		{name: "variable named export", in: "exportA=1\n", want: map[string]string{"exportA": "1"}},
		{name: "no assignment", in: "A=1\njust words\n", wantErr: "line 2"},
		{name: "bad key", in: "1A=1\n", wantErr: "line 1"},
		{name: "key with dash", in: "A-B=1\n", wantErr: "line 1"},
		{name: "unterminated quote", in: "A=\"x\n", wantErr: "unterminated quote"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseEnvFile(strings.NewReader(tt.in))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("parseEnvFile() error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseEnvFile() error = %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("parseEnvFile() = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestFindEnvFile(t *testing.T) {
	root := t.TempDir()
	mkdir := func(p string) string {
		t.Helper()
		p = filepath.Join(root, p)
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	write := func(p, s string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(root, p), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	mkdir("mod/a/b")
	mkdir("nomod/x")
	write("mod/go.mod", "module m\n")
	write(".emulators.env", "export KINESIS_ENDPOINT=http://outside\n") // above the module root
	write("mod/.emulators.env", "export KINESIS_ENDPOINT=http://root\n")

	f := findEnvFile(filepath.Join(root, "mod/a/b"))
	if f.err != nil || f.path != filepath.Join(root, "mod", EnvFileName) || f.vars[EnvKinesalite] != "http://root" {
		t.Fatalf("from a subdirectory: %+v", f)
	}

	write("mod/a/.emulators.env", "export KINESIS_ENDPOINT=http://nearer\n")
	if f := findEnvFile(filepath.Join(root, "mod/a/b")); f.vars[EnvKinesalite] != "http://nearer" {
		t.Fatalf("the nearest file should win: %+v", f)
	}

	if err := os.Remove(filepath.Join(root, "mod/.emulators.env")); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(root, "mod/a/.emulators.env")); err != nil {
		t.Fatal(err)
	}
	f = findEnvFile(filepath.Join(root, "mod/a/b"))
	if f.path != "" || f.err != nil || !strings.Contains(f.search, "module root") {
		t.Fatalf("the search must stop at the module root: %+v", f)
	}

	write("mod/.emulators.env", "garbage\n")
	if f := findEnvFile(filepath.Join(root, "mod")); f.err == nil || !strings.Contains(f.err.Error(), "line 1") {
		t.Fatalf("a malformed file must be reported: %+v", f)
	}
}

func TestLookupEndpoint(t *testing.T) {
	file := envFile{path: "/m/.emulators.env", vars: map[string]string{EnvKinesalite: "http://file:1"}}
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	tests := []struct {
		name    string
		getenv  func(string) string
		file    envFile
		e       emulator
		want    string
		wantErr string
	}{
		{name: "environment wins", getenv: env(map[string]string{EnvKinesalite: "http://env:1"}), file: file, e: kinesalite, want: "http://env:1"},
		{name: "empty variable falls back to the file", getenv: env(map[string]string{EnvKinesalite: " "}), file: file, e: kinesalite, want: "http://file:1"},
		{name: "from the file", getenv: env(nil), file: file, e: kinesalite, want: "http://file:1"},
		{name: "not in the file", getenv: env(nil), file: file, e: dynalite, wantErr: "DYNAMODB_ENDPOINT is set neither"},
		{name: "no file", getenv: env(nil), file: envFile{search: "from /x up to /"}, e: kinesisMock, wantErr: "no .emulators.env was found (searched from /x up to /)"},
		{name: "bad file", getenv: env(nil), file: envFile{path: "/f", err: os.ErrPermission}, e: kinesalite, wantErr: "could not be read"},
		{name: "bad file, variable set", getenv: env(map[string]string{EnvDynamoDB: "http://d:1"}), file: envFile{err: os.ErrPermission}, e: dynalite, want: "http://d:1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := lookupEndpoint(tt.e, tt.getenv, tt.file)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("lookupEndpoint() = %q, %v; want error containing %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("lookupEndpoint() = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestProbeRejectsBadURL(t *testing.T) {
	for _, ep := range []string{"127.0.0.1:4567", "ftp://h:1", "http://", "::"} {
		if err := probe(kinesalite, ep); err == nil || !strings.Contains(err.Error(), "is not an http(s)://host:port URL") {
			t.Errorf("probe(%q) = %v", ep, err)
		}
	}
}

var validName = regexp.MustCompile(`^[a-zA-Z0-9_.-]{3,128}$`)

func TestUniqueName(t *testing.T) {
	seen := map[string]bool{}
	for _, prefix := range []string{"stream", "", "a b/c:d", strings.Repeat("x", 300), "-lead-"} {
		for range 3 {
			n := UniqueName(t, prefix)
			if !validName.MatchString(n) || strings.Contains(n, "--") {
				t.Errorf("UniqueName(%q) = %q: not a valid stream/table name", prefix, n)
			}
			if seen[n] {
				t.Errorf("UniqueName(%q) = %q twice", prefix, n)
			}
			seen[n] = true
		}
	}
	t.Run("sub test/with: odd ☃ characters "+strings.Repeat("y", 200), func(t *testing.T) {
		n := UniqueName(t, "stream")
		if !validName.MatchString(n) {
			t.Errorf("UniqueName() = %q: not a valid stream/table name", n)
		}
		if !strings.HasPrefix(n, "stream-TestUniqueName-sub_test-with-_odd_-_characters_y") {
			t.Errorf("UniqueName() = %q should carry the test's name", n)
		}
	})
}

// fakeTB records how endpoint gives up; Skip and Fatal stop the helper like the real ones do.
type fakeTB struct {
	testing.TB
	skipped, failed string
}

type stopped struct{}

func (f *fakeTB) Helper()           {}
func (f *fakeTB) Skip(args ...any)  { f.skipped = fmt.Sprint(args...); panic(stopped{}) }
func (f *fakeTB) Fatal(args ...any) { f.failed = fmt.Sprint(args...); panic(stopped{}) }

func runEndpoint(t *testing.T, e emulator) *fakeTB {
	f := &fakeTB{TB: t}
	func() {
		defer func() {
			if r := recover(); r != nil {
				if _, ok := r.(stopped); !ok {
					panic(r)
				}
			}
		}()
		endpoint(f, e)
		t.Fatal("endpoint returned for an unreachable emulator")
	}()
	return f
}

func TestUnavailableSkipsOrFailsUnderCI(t *testing.T) {
	t.Setenv(EnvDynamoDB, "http://127.0.0.1:1") // nothing listens on port 1

	t.Setenv("CI", "")
	f := runEndpoint(t, dynalite)
	if f.failed != "" || !strings.Contains(f.skipped, "make emulators-up") || !strings.Contains(f.skipped, "dynalite") {
		t.Fatalf("outside CI: skipped %q, failed %q; want a skip saying how to start it", f.skipped, f.failed)
	}

	t.Setenv("CI", "true")
	f = runEndpoint(t, dynalite)
	if f.skipped != "" || !strings.Contains(f.failed, "make emulators-up") || !strings.Contains(f.failed, "DYNAMODB_ENDPOINT=http://127.0.0.1:1") {
		t.Fatalf("under CI=true: skipped %q, failed %q; want a failure saying how to start it", f.skipped, f.failed)
	}
}
