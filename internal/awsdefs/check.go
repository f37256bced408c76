package awsdefs

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"testing"
)

// PolicyCheck is one policy file that must allow exactly what a component calls.
type PolicyCheck struct {
	File string // under resources/iam
	// Exempt lists the actions of the policy that the integration suite does not call, each with
	// the reason it is in the policy anyway. An exempt action that the suite does call is an
	// error: the exemption is stale.
	Exempt map[string]string
}

// Component describes what one integration test package checks.
type Component struct {
	Name string // for messages, such as "aws_kinesis input"
	// Services are the SDK service ids (such as "Kinesis", "DynamoDB") of which at least one call
	// must have been answered with success for the suite to count as run against the emulators.
	Services []string
	Policies []PolicyCheck
}

// Compare checks the actions called against a policy: every action called must be allowed, and
// every action allowed must have been called or be exempt (with a reason).
func Compare(called []string, p Policy, exempt map[string]string) error {
	allowed := p.Actions()
	var problems []string
	for _, a := range called {
		if !slices.Contains(allowed, a) {
			problems = append(problems, fmt.Sprintf("%s is called but not allowed", a))
		}
	}
	for _, a := range allowed {
		_, isExempt := exempt[a]
		switch {
		case slices.Contains(called, a) && isExempt:
			problems = append(problems, fmt.Sprintf("%s is exempt (%q) but called: drop the exemption", a, exempt[a]))
		case !slices.Contains(called, a) && !isExempt:
			problems = append(problems, fmt.Sprintf("%s is allowed but never called: remove it, or exempt it with the reason it is needed", a))
		}
	}
	for a, why := range exempt {
		if !slices.Contains(allowed, a) {
			problems = append(problems, fmt.Sprintf("%s is exempt (%q) but not in the policy", a, why))
		}
		if strings.TrimSpace(why) == "" {
			problems = append(problems, fmt.Sprintf("%s is exempt without a reason", a))
		}
	}
	if len(problems) == 0 {
		return nil
	}
	slices.Sort(problems)
	return fmt.Errorf("%s does not match the calls of the integration suite:\n\t%s", p.File, strings.Join(problems, "\n\t"))
}

// Check compares what r recorded with each of c's policies.
func (c Component) Check(r *Recorder) error {
	called := r.Actions()
	var errs []error
	for _, pc := range c.Policies {
		p, err := LoadPolicy(pc.File)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if err := Compare(called, p, pc.Exempt); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// filterFlags are the test flags that run a part of the package (or none of its tests): the
// calls recorded then say nothing about what the whole suite needs.
var filterFlags = []string{"test.run", "test.skip", "test.list", "test.fuzz"}

// partialRun returns why this run of the test binary is not the whole suite, or "".
func partialRun(lookup func(string) *flag.Flag) string {
	for _, name := range filterFlags {
		if f := lookup(name); f != nil && f.Value.String() != "" {
			return fmt.Sprintf("-%s=%s", strings.TrimPrefix(name, "test."), f.Value.String())
		}
	}
	if f := lookup("test.short"); f != nil && f.Value.String() == "true" {
		return "-short"
	}
	return ""
}

// Main runs the package's tests (m.Run) while recording the calls of the components, then, when
// they passed and the whole suite ran against the emulators, checks the calls against c's
// policies. A mismatch fails the package with a message that lists each difference. Use it as
// TestMain: os.Exit(awsdefs.Main(m, component)).
//
// A run of a part of the suite (-run, -skip, -short, -fuzz) is not checked. Neither is a run in
// which no call of a service of c was answered (the emulators are not running and the integration
// tests skipped), except under CI=true, where that is a failure, as a missing emulator is.
func Main(m *testing.M, c Component) int {
	r := Start()
	code := m.Run()
	r.Stop()
	if code != 0 {
		return code
	}
	return decide(c, r, flag.Lookup, os.Getenv("CI") == "true", testing.Verbose(), os.Stderr)
}

// decide is Main after m.Run passed: 0 when the check passed or does not apply, 1 when it failed.
func decide(c Component, r *Recorder, lookup func(string) *flag.Flag, ci, verbose bool, w io.Writer) int {
	if why := partialRun(lookup); why != "" {
		if verbose {
			fmt.Fprintf(w, "IAM policy check of the %s: not run (%s: not the whole suite)\n", c.Name, why)
		}
		return 0
	}
	for _, s := range c.Services {
		if r.Answered(s) > 0 {
			continue
		}
		if ci {
			fmt.Fprintf(w, "FAIL: IAM policy check of the %s: no %s call was answered, under CI=true (are the emulators running?)\n", c.Name, s)
			return 1
		}
		fmt.Fprintf(w, "IAM policy check of the %s: not run: no %s call was answered (the emulators are not running?)\n", c.Name, s)
		return 0
	}
	if err := c.Check(r); err != nil {
		fmt.Fprintf(w, "FAIL: IAM policy check of the %s: %v\n", c.Name, err)
		return 1
	}
	if verbose {
		fmt.Fprintf(w, "IAM policy check of the %s: passed (%s)\n", c.Name, strings.Join(r.Actions(), ", "))
	}
	return 0
}
