package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/promgate/promgate/detect"
)

const detectorsUsage = `usage: promgate detectors list [--output table|json]
       promgate detectors export --format rules|prometheusrule [--severity S] [--scope S] [--source S]
                                 [--out FILE] [--test-file FILE] [--name NAME] [--namespace NS]
       promgate detectors docs`

func runDetectors(_ context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprintln(stderr, detectorsUsage)
		return errUsage
	}
	cat, err := detect.Load()
	if err != nil {
		return err
	}
	switch args[0] {
	case "list":
		return runDetectorsList(cat, args[1:], stdout, stderr)
	case "export":
		return runDetectorsExport(cat, args[1:], stdout, stderr)
	case "docs":
		fs := newFlagSet("detectors docs", stderr)
		if err := parseFlags(fs, args[1:]); err != nil {
			return err
		}
		if fs.NArg() > 0 {
			return errUsage
		}
		return cat.WriteMarkdown(stdout)
	case "-h", "--help", "help":
		fmt.Fprintln(stdout, detectorsUsage)
		return nil
	default:
		fmt.Fprintf(stderr, "promgate detectors: unknown subcommand %q\n%s\n", args[0], detectorsUsage)
		return errUsage
	}
}

func runDetectorsList(cat *detect.Catalog, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("detectors list", stderr)
	output := fs.String("output", "table", "table or json")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return errUsage
	}
	switch *output {
	case "json":
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(cat.Summaries(nil))
	case "table":
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tSEVERITY\tSCOPE\tFOR\tSOURCES\tATT&CK\tTITLE")
		for _, s := range cat.Summaries(nil) {
			attack := strings.Join(s.Attack, ",")
			if attack == "" {
				attack = "-"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.ID, s.Severity, s.Scope, s.For, strings.Join(s.Sources, ","), attack, s.Title)
		}
		return tw.Flush()
	default:
		fmt.Fprintf(stderr, "promgate detectors list: --output %q: use table or json\n", *output)
		return errUsage
	}
}

// csvFlag collects a repeatable, comma-separated flag.
type csvFlag []string

func (l *csvFlag) String() string { return strings.Join(*l, ",") }

func (l *csvFlag) Set(v string) error {
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			*l = append(*l, p)
		}
	}
	return nil
}

func runDetectorsExport(cat *detect.Catalog, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("detectors export", stderr)
	format := fs.String("format", "rules", "rules (a Prometheus rule file) or prometheusrule (a prometheus-operator manifest)")
	var sel detect.Selector
	fs.Var((*csvFlag)(&sel.Severities), "severity", "export only these severities (info, warning, critical; repeatable or comma-separated)")
	fs.Var((*csvFlag)(&sel.Scopes), "scope", "export only these scopes (ns, ns*, cluster)")
	fs.Var((*csvFlag)(&sel.Sources), "source", "export only detectors reading these data sources (see detectors list)")
	out := fs.String("out", "", "write the rules to FILE instead of stdout")
	testFile := fs.String("test-file", "", "also write a promtool test rules file for the exported rules to FILE (needs --out and --format rules)")
	name := fs.String("name", detect.GroupName, "metadata.name of the PrometheusRule")
	namespace := fs.String("namespace", "", "metadata.namespace of the PrometheusRule")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return errUsage
	}
	ds, err := cat.Select(sel)
	if err != nil {
		return err
	}
	if len(ds) == 0 {
		return errors.New("no detector matches the selection")
	}
	var b []byte
	switch *format {
	case "rules":
		b, err = detect.RuleFile(ds)
	case "prometheusrule":
		if *testFile != "" {
			fmt.Fprintln(stderr, "promgate detectors export: --test-file needs --format rules: promtool cannot load a PrometheusRule manifest")
			return errUsage
		}
		b, err = detect.PrometheusRule(ds, *name, *namespace)
	default:
		fmt.Fprintf(stderr, "promgate detectors export: --format %q: use rules or prometheusrule\n", *format)
		return errUsage
	}
	if err != nil {
		return err
	}
	if *testFile != "" && *out == "" {
		fmt.Fprintln(stderr, "promgate detectors export: --test-file needs --out, so that the test file can name the rule file")
		return errUsage
	}
	if *out == "" {
		_, err := stdout.Write(b)
		return err
	}
	if err := os.WriteFile(*out, b, 0o644); err != nil { //nolint:gosec // G306: a rule file for Prometheus to load: public detection rules, readable by the Prometheus user
		return fmt.Errorf("write rules: %w", err)
	}
	fmt.Fprintf(stderr, "wrote %d detectors to %s\n", len(ds), *out)
	if *testFile == "" {
		return nil
	}
	rel, err := relPath(filepath.Dir(*testFile), *out)
	if err != nil {
		return err
	}
	tb, err := detect.TestFile(ds, rel)
	if err != nil {
		return err
	}
	if err := os.WriteFile(*testFile, tb, 0o644); err != nil { //nolint:gosec // G306: a promtool test file beside the rule file: nothing secret
		return fmt.Errorf("write test file: %w", err)
	}
	fmt.Fprintf(stderr, "wrote %d tests to %s (run: promtool test rules %s)\n", 2*len(ds), *testFile, *testFile)
	return nil
}

// relPath returns target relative to dir, as promtool resolves rule_files
// against the test file's folder.
func relPath(dir, target string) (string, error) {
	absDir, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	absTarget, err := filepath.Abs(target)
	if err != nil {
		return "", err
	}
	rel, err := filepath.Rel(absDir, absTarget)
	if err != nil {
		return absTarget, nil
	}
	return rel, nil
}
