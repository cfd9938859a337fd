package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/promgate/promgate/detect"
)

const detectorsUsage = `usage: promgate detectors list [--output table|json]
       promgate detectors export --format rules|prometheusrule [--severity S] [--scope S] [--source S]
                                 [--out FILE] [--test-file FILE] [--name NAME] [--namespace NS]
                                 [--prometheus-version V [--enable-feature F] | --upstream URL]
       promgate detectors coverage [--have SOURCES] [--output table|json]
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
	case "coverage":
		return runDetectorsCoverage(cat, args[1:], stdout, stderr)
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
	version := fs.String("prometheus-version", "", "version of the Prometheus that loads the rules (2.x writes holt_winters, 3.x double_exponential_smoothing); default 3.x without feature flags")
	var features csvFlag
	fs.Var(&features, "enable-feature", "feature flags that Prometheus runs with ("+detect.FeatureExperimental+" enables the smoothing detectors on 3.x)")
	upstream := fs.String("upstream", "", "ask this Prometheus URL for its version and feature flags instead (GET /api/v1/status/buildinfo and /flags)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return errUsage
	}
	flavour := detect.DefaultFlavour
	switch {
	case *upstream != "" && (*version != "" || len(features) > 0):
		fmt.Fprintln(stderr, "promgate detectors export: --upstream detects the version; do not also pass --prometheus-version or --enable-feature")
		return errUsage
	case *upstream != "":
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		f, err := detect.UpstreamFlavour(ctx, &http.Client{Timeout: 10 * time.Second}, *upstream)
		if err != nil {
			return err
		}
		flavour = f
	case *version != "":
		f, err := detect.ParseFlavour(*version, features...)
		if err != nil {
			return err
		}
		flavour = f
	case len(features) > 0:
		fmt.Fprintln(stderr, "promgate detectors export: --enable-feature needs --prometheus-version")
		return errUsage
	}
	selected, err := cat.Select(sel)
	if err != nil {
		return err
	}
	ds, skipped, err := flavour.Adapt(selected)
	if err != nil {
		return err
	}
	if len(skipped) > 0 {
		fmt.Fprintf(stderr, "left out for %s: %s (they need %s: pass --prometheus-version 2.x, or --enable-feature %s on 3.x)\n",
			flavour, strings.Join(skipped, ", "), detect.FuncSmoothing, detect.FeatureExperimental)
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
	fmt.Fprintf(stderr, "wrote %d detectors for %s to %s\n", len(ds), flavour, *out)
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

// runDetectorsCoverage prints the ATT&CK tactics and techniques the catalog
// covers, and what each data source adds: with --have, the sources a team
// already scrapes, so that it sees what enabling one more exporter buys.
func runDetectorsCoverage(cat *detect.Catalog, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("detectors coverage", stderr)
	output := fs.String("output", "table", "table or json")
	var have csvFlag
	fs.Var(&have, "have", "data sources already scraped (repeatable or comma-separated; see detectors list); default all")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return errUsage
	}
	c, err := detect.CoverageOf(cat.List(), have)
	if err != nil {
		return err
	}
	switch *output {
	case "json":
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(c)
	case "table":
	default:
		fmt.Fprintf(stderr, "promgate detectors coverage: --output %q: use table or json\n", *output)
		return errUsage
	}
	list := func(s []string) string {
		if len(s) == 0 {
			return "-"
		}
		return strings.Join(s, ",")
	}
	covered := 0
	for _, ta := range c.Tactics {
		if len(ta.Detectors) > 0 {
			covered++
		}
	}
	scope := "all data sources"
	if len(c.Have) > 0 {
		scope = "data sources " + strings.Join(c.Have, ",")
	}
	fmt.Fprintf(stdout, "With %s: %d of %d detectors usable, %d of %d ATT&CK tactics and %d techniques covered.\n\n",
		scope, c.Usable, len(cat.List()), covered, len(c.Tactics), len(c.Techniques))
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TACTIC\tNAME\tDETECTORS\tTECHNIQUES")
	for _, ta := range c.Tactics {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\n", ta.ID, ta.Name, len(ta.Detectors), list(ta.Techniques))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(stdout)
	tw = tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TECHNIQUE\tNAME\tTACTICS\tDETECTORS")
	for _, te := range c.Techniques {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", te.ID, te.Name, list(te.Tactics), list(te.Detectors))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(stdout)
	tw = tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	what := "ONLY THROUGH IT"
	if len(c.Have) > 0 {
		what = "ENABLING IT ADDS"
	}
	fmt.Fprintf(tw, "SOURCE\tDETECTORS\t%s: DETECTORS\tTECHNIQUES (TACTICS)\n", what)
	for _, s := range c.Sources {
		name := s.Source
		if len(c.Have) > 0 && s.Available {
			name += " (have)"
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s (%s)\n", name, len(s.Detectors), list(s.AddsDetectors), list(s.AddsTechniques), list(s.AddsTactics))
	}
	return tw.Flush()
}
