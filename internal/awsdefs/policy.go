package awsdefs

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
)

// Policy is an IAM policy document as resources/iam holds them.
type Policy struct {
	File       string // the file it was read from, for messages
	Version    string
	Statements []Statement
}

// Statement is one statement of a Policy.
type Statement struct {
	Sid       string
	Effect    string
	Actions   []string
	Resources []string
	Condition map[string]map[string]any
}

// stringList is an IAM element that may be one string or a list of strings (Action, Resource).
type stringList []string

func (l *stringList) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*l = stringList{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return errors.New("want a string or a list of strings")
	}
	*l = many
	return nil
}

// rawStatement is the JSON form of a Statement. NotAction and NotResource are decoded only to be
// refused: a least-privilege policy names what it allows.
type rawStatement struct {
	Sid         string                    `json:"Sid"`
	Effect      string                    `json:"Effect"`
	Action      stringList                `json:"Action"`
	NotAction   stringList                `json:"NotAction"`
	Resource    stringList                `json:"Resource"`
	NotResource stringList                `json:"NotResource"`
	Condition   map[string]map[string]any `json:"Condition"`
}

// ParsePolicy reads an IAM policy document. It accepts what IAM accepts for the elements used
// here (Statement as an object or a list, Action and Resource as a string or a list) and refuses
// what a least-privilege policy of this project must not hold: unknown fields, a Deny (nothing
// here needs one), NotAction or NotResource, wildcards in actions, a statement without actions or
// resources.
func ParsePolicy(file string, b []byte) (Policy, error) {
	var raw struct {
		Version   string          `json:"Version"`
		Statement json.RawMessage `json:"Statement"`
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&raw); err != nil {
		return Policy{}, fmt.Errorf("%s: %w", file, err)
	}
	p := Policy{File: file, Version: raw.Version}
	if raw.Version != "2012-10-17" {
		return Policy{}, fmt.Errorf("%s: Version %q, want 2012-10-17 (the only version with policy variables and the current grammar)", file, raw.Version)
	}
	var stmts []rawStatement
	trimmed := bytes.TrimSpace(raw.Statement)
	switch {
	case len(trimmed) == 0:
		return Policy{}, fmt.Errorf("%s: no Statement", file)
	case trimmed[0] == '{':
		var one rawStatement
		if err := strictUnmarshal(trimmed, &one); err != nil {
			return Policy{}, fmt.Errorf("%s: Statement: %w", file, err)
		}
		stmts = []rawStatement{one}
	default:
		if err := strictUnmarshal(trimmed, &stmts); err != nil {
			return Policy{}, fmt.Errorf("%s: Statement: %w", file, err)
		}
	}
	for i, s := range stmts {
		where := fmt.Sprintf("%s: statement %d (%q)", file, i, s.Sid)
		switch {
		case s.Effect != "Allow":
			return Policy{}, fmt.Errorf("%s: Effect %q, want Allow", where, s.Effect)
		case len(s.NotAction) > 0 || len(s.NotResource) > 0:
			return Policy{}, fmt.Errorf("%s: NotAction and NotResource allow more than they name", where)
		case len(s.Action) == 0:
			return Policy{}, fmt.Errorf("%s: no Action", where)
		case len(s.Resource) == 0:
			return Policy{}, fmt.Errorf("%s: no Resource", where)
		}
		for _, a := range s.Action {
			service, op, ok := strings.Cut(a, ":")
			if !ok || service == "" || op == "" {
				return Policy{}, fmt.Errorf("%s: action %q is not service:Operation", where, a)
			}
			if strings.ContainsAny(a, "*?") {
				return Policy{}, fmt.Errorf("%s: action %q has a wildcard", where, a)
			}
		}
		p.Statements = append(p.Statements, Statement{
			Sid: s.Sid, Effect: s.Effect, Actions: s.Action, Resources: s.Resource, Condition: s.Condition,
		})
	}
	return p, nil
}

func strictUnmarshal(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

// Actions returns every action the policy allows, sorted, each once.
func (p Policy) Actions() []string {
	var all []string
	for _, s := range p.Statements {
		all = append(all, s.Actions...)
	}
	slices.Sort(all)
	return slices.Compact(all)
}

// Statement returns the statement with that Sid.
func (p Policy) Statement(sid string) (Statement, bool) {
	for _, s := range p.Statements {
		if s.Sid == sid {
			return s, true
		}
	}
	return Statement{}, false
}

// ResourcesDir returns the repository's resources/ directory, found from this source file (tests
// run with the source at hand).
func ResourcesDir() (string, error) {
	_, self, _, ok := runtime.Caller(0)
	if !ok {
		return "", errors.New("awsdefs: cannot locate the source directory")
	}
	return filepath.Join(filepath.Dir(self), "..", "..", "resources"), nil
}

// LoadPolicy reads and parses resources/iam/<name>.
func LoadPolicy(name string) (Policy, error) {
	dir, err := ResourcesDir()
	if err != nil {
		return Policy{}, err
	}
	path := filepath.Join(dir, "iam", name)
	b, err := os.ReadFile(path)
	if err != nil {
		return Policy{}, fmt.Errorf("read IAM policy: %w", err)
	}
	return ParsePolicy("resources/iam/"+name, b)
}
