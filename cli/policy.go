package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/promgate/promgate/authz"
	"github.com/promgate/promgate/config"
	"github.com/promgate/promgate/enforce"
)

func runPolicy(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "eval" {
		return runPolicyEval(ctx, args[1:], stdout, stderr)
	}
	if len(args) == 0 || args[0] != "test" {
		fmt.Fprintln(stderr, "usage: promgate policy test [-v] [DIR]\n       promgate policy eval --config FILE --input FILE")
		return errUsage
	}
	fs := newFlagSet("policy test", stderr)
	verbose := fs.Bool("v", false, "list every test")
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	dir := "policies"
	if fs.NArg() > 1 {
		return errUsage
	}
	if fs.NArg() == 1 {
		dir = fs.Arg(0)
	}
	if _, err := os.Stat(dir); err != nil {
		return fmt.Errorf("policy folder: %w", err)
	}
	ok, err := authz.Test(ctx, os.DirFS(dir), stdout, *verbose)
	if err != nil {
		return err
	}
	if !ok {
		return errors.New("policy tests failed")
	}
	return nil
}

// runPolicyEval prints the decision for one input document (the DESIGN.md
// policy input) and, for each expression in it, the query the gateway would
// forward or why it would refuse it. The decision is made and compiled by
// the code serve uses (Authorizer.DecideJSON, Decision.Enforcer).
func runPolicyEval(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("policy eval", stderr)
	configFile := fs.String("config", "promgate.yml", "configuration file")
	inputFile := fs.String("input", "", "policy input document, JSON (\"-\" for stdin)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *inputFile == "" {
		fmt.Fprintln(stderr, "promgate policy eval: --input is required")
		return errUsage
	}
	cfg, err := config.Load(*configFile)
	if err != nil {
		return err
	}
	var input []byte
	if *inputFile == "-" {
		input, err = io.ReadAll(io.LimitReader(os.Stdin, 16<<20))
	} else {
		input, err = os.ReadFile(*inputFile)
	}
	if err != nil {
		return fmt.Errorf("read input: %w", err)
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	az, err := authz.New(cfg.Authz, logger, prometheus.NewRegistry())
	if err != nil {
		return err
	}
	dec, decErr := az.DecideJSON(ctx, input)
	out := struct {
		Decision       authz.Decision `json:"decision"`
		Error          string         `json:"error,omitempty"`
		PolicyRevision string         `json:"policy_revision"`
		Enforced       []enforced     `json:"enforced,omitempty"`
	}{Decision: dec, PolicyRevision: dec.Revision}
	if decErr != nil {
		out.Error = decErr.Error()
	}
	var doc struct {
		Query struct {
			Expressions []string `json:"expressions"`
		} `json:"query"`
	}
	if err := json.Unmarshal(input, &doc); err != nil {
		return fmt.Errorf("input is not a JSON object: %w", err)
	}
	if en := dec.Enforcer(); en != nil {
		for _, e := range doc.Query.Expressions {
			out.Enforced = append(out.Enforced, rewrite(en, e))
		}
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(out); err != nil {
		return err
	}
	if decErr != nil {
		return errors.New("the policy could not decide: the gateway would deny")
	}
	return nil
}

type enforced struct {
	Query    string `json:"query"`
	Enforced string `json:"enforced,omitempty"`
	Error    string `json:"error,omitempty"`
}

// rewrite confines one expression with the decision's enforcer, as the
// gateway does, and reports its own outcome.
func rewrite(en *enforce.Enforcer, expr string) enforced {
	r := enforced{Query: expr}
	q, err := enforce.ParseQuery(expr)
	if err == nil {
		r.Enforced, err = en.Rewrite(q)
	}
	if err != nil {
		r.Error = err.Error()
	}
	return r
}
