package authz

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"io/fs"
	"slices"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"github.com/open-policy-agent/opa/v1/tester"
)

// testTimeout bounds one Rego test, as `opa test --timeout` does.
const testTimeout = 5 * time.Second

// Test runs the Rego unit tests (rules named test_* in *_test.rego and other
// modules) of the policy folder fsys with OPA's tester and writes the results
// to w as `opa test` does; verbose lists every test, not only failures.
//
// The folder is loaded as New loads it, test modules included, and compiled
// with the same capabilities, strict mode and strict built-in errors, so a
// policy that passes its tests also loads and behaves the same for serving. ok is false when a test fails or errors, and
// when the folder has no test at all. err is set when the folder cannot be
// loaded or compiled; it names the file and line of a Rego problem.
func Test(ctx context.Context, fsys fs.FS, w io.Writer, verbose bool) (ok bool, err error) {
	files, err := readFiles(fsys, true)
	if err != nil {
		return false, fmt.Errorf("read policies: %w", err)
	}
	p, err := parse("", files)
	if err != nil {
		return false, err
	}
	compiler := ast.NewCompiler().
		WithCapabilities(capabilities()).
		WithStrict(true).
		WithDefaultRegoVersion(ast.RegoV1).
		WithEnablePrintStatements(true)
	store := inmem.NewFromObjectWithOpts(p.data, inmem.OptRoundTripOnWrite(false))
	runner := tester.NewRunner().
		SetCompiler(compiler).
		SetStore(store).
		SetModules(p.modules).
		SetDefaultRegoVersion(ast.RegoV1).
		SetTimeout(testTimeout).
		RaiseBuiltinErrors(true).
		CapturePrintOutput(true)
	ch, err := runner.RunTests(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("compile policies: %w", err)
	}

	// Results arrive in any order; report them in file and line order so
	// that the output is stable.
	var results []*tester.Result
	for r := range ch {
		results = append(results, r)
	}
	slices.SortFunc(results, func(a, b *tester.Result) int {
		if a.Location == nil || b.Location == nil {
			return cmp.Compare(a.Name, b.Name)
		}
		return cmp.Or(cmp.Compare(a.Location.File, b.Location.File), cmp.Compare(a.Location.Row, b.Location.Row), cmp.Compare(a.Name, b.Name))
	})
	if len(results) == 0 {
		fmt.Fprintln(w, "no tests found") //nolint:errcheck // ok is false either way; the message is a courtesy
		return false, nil
	}
	sorted := make(chan *tester.Result, len(results))
	ok = true
	for _, r := range results {
		if r.Fail || r.Error != nil {
			ok = false
		}
		sorted <- r
	}
	close(sorted)
	if err := (tester.PrettyReporter{Output: w, Verbose: verbose, FailureLine: true}).Report(sorted); err != nil {
		return false, fmt.Errorf("report test results: %w", err)
	}
	return ok, nil
}
