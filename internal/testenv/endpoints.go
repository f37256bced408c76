package testenv

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
)

// Environment variables holding the emulator endpoints, as written by up.sh.
const (
	EnvKinesalite  = "KINESIS_ENDPOINT"
	EnvKinesisMock = "KINESIS_MOCK_ENDPOINT"
	EnvDynamoDB    = "DYNAMODB_ENDPOINT"
)

// EnvFileName is the file up.sh writes at the module root.
const EnvFileName = ".emulators.env"

// startHint says how to start the emulators; it ends every skip or failure message.
const startHint = "start the emulators with `make emulators-up` (resources/emulators/up.sh)"

// emulator describes one emulator: its name for messages and the variable naming its endpoint.
type emulator struct {
	name   string
	envVar string
}

var (
	kinesalite  = emulator{name: "kinesalite", envVar: EnvKinesalite}
	kinesisMock = emulator{name: "kinesis-local (kinesis-mock)", envVar: EnvKinesisMock}
	dynalite    = emulator{name: "dynalite", envVar: EnvDynamoDB}
)

// envFile is the parsed .emulators.env of this process (looked up once).
type envFile struct {
	path   string            // where it was found, "" when not found
	vars   map[string]string // its variables
	err    error             // a read or parse error
	search string            // the directories searched, for messages
}

var loadEnvFile = sync.OnceValue(func() envFile {
	wd, err := os.Getwd()
	if err != nil {
		return envFile{err: err}
	}
	return findEnvFile(wd)
})

// findEnvFile walks up from dir to the directory holding go.mod (included) and reads the first
// .emulators.env it finds.
func findEnvFile(dir string) envFile {
	dir = filepath.Clean(dir)
	start := dir
	for {
		p := filepath.Join(dir, EnvFileName)
		f, err := os.Open(p)
		if err == nil {
			vars, err := parseEnvFile(f)
			f.Close()
			if err != nil {
				err = fmt.Errorf("%s: %w", p, err)
			}
			return envFile{path: p, vars: vars, err: err}
		}
		if !errors.Is(err, os.ErrNotExist) {
			return envFile{path: p, err: err}
		}
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return envFile{search: fmt.Sprintf("from %s up to the module root %s", start, dir)}
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return envFile{search: fmt.Sprintf("from %s up to / (no go.mod found)", start)}
		}
		dir = parent
	}
}

// parseEnvFile reads shell assignments as up.sh writes them: `export KEY=VALUE` or `KEY=VALUE`,
// the value optionally in single or double quotes; blank lines and # comments are ignored.
func parseEnvFile(r io.Reader) (map[string]string, error) {
	vars := make(map[string]string)
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if rest, ok := strings.CutPrefix(line, "export"); ok && rest != "" && (rest[0] == ' ' || rest[0] == '\t') {
			line = strings.TrimSpace(rest)
		}
		key, value, ok := strings.Cut(line, "=")
		if !ok || !validEnvKey(key) {
			return nil, fmt.Errorf("line %d: not a KEY=VALUE assignment: %q", n, sc.Text())
		}
		value = strings.TrimSpace(value)
		if len(value) >= 2 && (value[0] == '"' || value[0] == '\'') {
			if value[len(value)-1] != value[0] {
				return nil, fmt.Errorf("line %d: unterminated quote: %q", n, sc.Text())
			}
			value = value[1 : len(value)-1]
		} else if i := strings.Index(value, " #"); i >= 0 {
			value = strings.TrimSpace(value[:i])
		}
		vars[key] = value
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return vars, nil
}

func validEnvKey(k string) bool {
	if k == "" || (k[0] >= '0' && k[0] <= '9') {
		return false
	}
	for _, c := range k {
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// lookupEndpoint returns the endpoint of e from the environment, else from the env file, or an
// error that says where it looked.
func lookupEndpoint(e emulator, getenv func(string) string, file envFile) (string, error) {
	if v := strings.TrimSpace(getenv(e.envVar)); v != "" {
		return v, nil
	}
	if file.err != nil {
		return "", fmt.Errorf("%s is not set and %s could not be read: %v", e.envVar, EnvFileName, file.err)
	}
	if file.path == "" {
		return "", fmt.Errorf("%s is not set and no %s was found (searched %s)", e.envVar, EnvFileName, file.search)
	}
	if v := strings.TrimSpace(file.vars[e.envVar]); v != "" {
		return v, nil
	}
	return "", fmt.Errorf("%s is set neither in the environment nor in %s", e.envVar, file.path)
}
