package detect

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"text/template"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/promql/parser"
	"go.yaml.in/yaml/v3"
)

//go:embed catalog.yaml
var catalogYAML []byte

// Scopes say how a detector behaves under a caller's enforcement.
const (
	// ScopeNamespace detectors keep their meaning when confined to the
	// caller's namespaces.
	ScopeNamespace = "ns"
	// ScopeExportedNamespace detectors read metrics that carry the object's
	// namespace, which a ServiceMonitor scrape renames to exported_namespace.
	// They keep their meaning only with honor_labels or enforcement on
	// exported_namespace, which the gateway cannot know, so they run only for
	// unrestricted callers.
	ScopeExportedNamespace = "ns*"
	// ScopeCluster detectors read cluster-wide metrics and run only for
	// unrestricted callers.
	ScopeCluster = "cluster"
)

// Severities, as used by the severity label.
const (
	SeverityInfo     = "info"
	SeverityWarning  = "warning"
	SeverityCritical = "critical"
)

// Rule label names that every exported rule and every alert carries, next to
// alertname (the detector id).
const (
	LabelSeverity  = "severity"
	LabelDetector  = "detector"
	LabelTechnique = "technique"
)

// Detector is one entry of the catalog.
type Detector struct {
	// ID is the detector's stable name, used as alertname.
	ID string `json:"id"`
	// Title is a one-line summary.
	Title string `json:"title"`
	// Description says what the detector sees and why it matters.
	Description string `json:"description"`
	// Severity is info, warning or critical.
	Severity string `json:"severity"`
	// Attack lists MITRE ATT&CK technique or tactic ids; empty where none
	// fits.
	Attack []string `json:"attack"`
	// Sources names the exporters the query reads (kube-apiserver,
	// kube-state-metrics, cadvisor, node-exporter, ...).
	Sources []string `json:"sources"`
	// Requires names exporter flags or setup the query needs, if any.
	Requires string `json:"requires,omitempty"`
	// Scope is ns, ns* or cluster.
	Scope string `json:"scope"`
	// Expr is the PromQL expression; it returns the anomalous series. It is
	// self-contained: recorded series that the rule reads are replaced by
	// the expressions they record (see Records), so that it runs on any
	// upstream.
	Expr string `json:"query"`
	// RuleExpr is the expression of the exported alerting rule, which may
	// read the series that Records record. It equals Expr for detectors
	// without recording rules.
	RuleExpr string `json:"-"`
	// Records are the recording rules that RuleExpr reads, exported before
	// the alerting rules.
	Records []Record `json:"records,omitempty"`
	// Dialect names the function that only some Prometheus versions know
	// (FuncSmoothing), or is empty for portable PromQL. Flavour.Adapt
	// writes the rule for the target version or leaves the detector out.
	Dialect string `json:"dialect,omitempty"`
	// For is how long the expression must return a series before it fires.
	For time.Duration `json:"-"`
	// Summary is the summary annotation, a Prometheus template over $labels.
	Summary string `json:"summary"`
	// Runbook says what to do when the detector fires.
	Runbook string `json:"runbook"`
	// UsesAbsent reports whether the expression calls absent() or
	// absent_over_time(), which fire when enforcement hides a series.
	UsesAbsent bool `json:"uses_absent"`
	// Test holds the synthetic data that proves the detector.
	Test Test `json:"-"`
}

// Test is a detector's proof: data it must fire on and data it must not.
type Test struct {
	Fire   Scenario `yaml:"fire"`
	Benign Scenario `yaml:"benign"`
}

// Scenario is one synthetic data set. Samples are Interval apart from t=0.
type Scenario struct {
	// Description says what the data shows.
	Description string `yaml:"description"`
	// Interval is the spacing of the samples: ScenarioInterval unless the
	// scenario says otherwise. Long scenarios (a day or weeks of history)
	// use a coarser one so that the exported promtool tests stay fast.
	Interval time.Duration `yaml:"-"`
	// Eval is the evaluation time, counted from t=0.
	Eval time.Duration `yaml:"-"`
	// Series are the input series in promtool notation.
	Series []Series `yaml:"series"`
	// Alerts are the label sets (rule labels excluded) of the alerts that
	// must be firing at Eval; empty for benign data.
	Alerts []map[string]string `yaml:"alerts"`
}

// Series is one input series in promtool / promqltest notation.
type Series struct {
	Series string `yaml:"series"`
	Values string `yaml:"values"`
}

// ScenarioInterval is the default spacing of the samples of a scenario.
const ScenarioInterval = time.Minute

// TestEvaluationInterval is the evaluation_interval of the exported promtool
// test file. promtool evaluates every rule of the file at every step from
// t=0 to a test's last eval time, whatever the test, so the cost of the file
// is the number of steps times the number of rules; a 15-minute step keeps
// two weeks of history affordable. A scenario's eval time should be a
// multiple of it, its for: window a whole number of steps.
const TestEvaluationInterval = 15 * time.Minute

// Catalog is the loaded, validated detector catalog. It is immutable.
type Catalog struct {
	detectors []Detector
	byID      map[string]int
}

type yamlScenario struct {
	Description string              `yaml:"description"`
	Interval    model.Duration      `yaml:"interval"`
	Eval        model.Duration      `yaml:"eval"`
	Series      []Series            `yaml:"series"`
	Alerts      []map[string]string `yaml:"alerts"`
}

type yamlDetector struct {
	ID          string         `yaml:"id"`
	Title       string         `yaml:"title"`
	Description string         `yaml:"description"`
	Severity    string         `yaml:"severity"`
	Attack      []string       `yaml:"attack"`
	Sources     []string       `yaml:"sources"`
	Requires    string         `yaml:"requires"`
	Scope       string         `yaml:"scope"`
	For         model.Duration `yaml:"for"`
	Record      []Record       `yaml:"record"`
	Expr        string         `yaml:"expr"`
	Summary     string         `yaml:"summary"`
	Runbook     string         `yaml:"runbook"`
	Test        struct {
		Fire   yamlScenario `yaml:"fire"`
		Benign yamlScenario `yaml:"benign"`
	} `yaml:"test"`
}

// Load returns the catalog embedded in the binary.
func Load() (*Catalog, error) {
	return parseCatalog(catalogYAML)
}

// stockParser parses like an upstream Prometheus without feature flags.
var stockParser = parser.NewParser(parser.Options{})

var (
	idRE      = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)
	attackRE  = regexp.MustCompile(`^T[AS]?[0-9]{4}(\.[0-9]{3})?$`)
	sourceRE  = regexp.MustCompile(`^[a-z][a-z0-9-]*$`)
	valueVars = regexp.MustCompile(`\$value|\.Value`)
)

func parseCatalog(b []byte) (*Catalog, error) {
	var doc struct {
		Detectors []yamlDetector `yaml:"detectors"`
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("decode detector catalog: %w", err)
	}
	c := &Catalog{byID: map[string]int{}}
	records := map[string]string{}
	var errs []error
	for i, y := range doc.Detectors {
		d, err := y.detector()
		if err != nil {
			errs = append(errs, fmt.Errorf("detector %d (%s): %w", i+1, y.ID, err))
			continue
		}
		if _, dup := c.byID[d.ID]; dup {
			errs = append(errs, fmt.Errorf("detector %d: duplicate id %s", i+1, d.ID))
			continue
		}
		for _, r := range d.Records {
			if prev, ok := records[r.Name]; ok && prev != r.Expr {
				errs = append(errs, fmt.Errorf("detector %d (%s): record %s is defined differently by another detector", i+1, d.ID, r.Name))
			}
			records[r.Name] = r.Expr
		}
		c.byID[d.ID] = len(c.detectors)
		c.detectors = append(c.detectors, d)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if len(c.detectors) == 0 {
		return nil, errors.New("detector catalog is empty")
	}
	return c, nil
}

func (y yamlDetector) detector() (Detector, error) {
	d := Detector{
		ID:          y.ID,
		Title:       strings.TrimSpace(y.Title),
		Description: strings.TrimSpace(y.Description),
		Severity:    y.Severity,
		Attack:      y.Attack,
		Sources:     y.Sources,
		Requires:    strings.TrimSpace(y.Requires),
		Scope:       y.Scope,
		RuleExpr:    strings.TrimSpace(y.Expr),
		Records:     y.Record,
		For:         time.Duration(y.For),
		Summary:     strings.TrimSpace(y.Summary),
		Runbook:     strings.TrimSpace(y.Runbook),
		Test: Test{
			Fire:   y.Test.Fire.scenario(),
			Benign: y.Test.Benign.scenario(),
		},
	}
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if !idRE.MatchString(d.ID) {
		bad("id %q must be lowercase letters, digits and underscores", d.ID)
	}
	if d.Title == "" || d.Description == "" || d.Runbook == "" || d.Summary == "" {
		bad("title, description, summary and runbook are required")
	}
	switch d.Severity {
	case SeverityInfo, SeverityWarning, SeverityCritical:
	default:
		bad("severity %q is not info, warning or critical", d.Severity)
	}
	switch d.Scope {
	case ScopeNamespace, ScopeExportedNamespace, ScopeCluster:
	default:
		bad("scope %q is not ns, ns* or cluster", d.Scope)
	}
	for _, a := range d.Attack {
		if !attackRE.MatchString(a) {
			bad("attack %q is not an ATT&CK technique or tactic id", a)
		}
	}
	if len(d.Sources) == 0 {
		bad("at least one source is required")
	}
	for _, s := range d.Sources {
		if !sourceRE.MatchString(s) {
			bad("source %q must be lowercase letters, digits and dashes", s)
		}
	}
	if d.For < 0 {
		bad("for must not be negative")
	}
	for i := range d.Records {
		d.Records[i].Expr = strings.TrimSpace(d.Records[i].Expr)
	}
	recs, err := parseRecords(d.Records)
	if err != nil {
		bad("%v", err)
	}
	expr, err := stockParser.ParseExpr(d.RuleExpr)
	if err != nil {
		// The one dialect-specific function the catalog may use.
		if e, derr := dialectParser.ParseExpr(d.RuleExpr); derr == nil {
			if dialect, derr := dialectOf(e); derr == nil {
				expr, err, d.Dialect = e, nil, dialect
			}
		}
	}
	if err != nil {
		bad("expr does not parse with the stock parser: %v", err)
	} else {
		if expr.Type() != parser.ValueTypeVector {
			bad("expr returns a %s, not an instant vector", expr.Type())
		}
		for _, name := range offsetRecords(expr, recs) {
			if usesTime(recs[name]) {
				bad("record %s calls time(), which an offset does not move; read it without offset", name)
			}
		}
		used := map[string]bool{}
		parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
			if vs, ok := n.(*parser.VectorSelector); ok {
				used[vs.Name] = true
			}
			return nil
		})
		for name := range recs {
			if !used[name] {
				bad("record %s is not read by expr", name)
			}
		}
		d.UsesAbsent = usesAbsent(expr)
		for _, r := range recs {
			d.UsesAbsent = d.UsesAbsent || usesAbsent(r)
		}
		inlined, err := inlineRecords(expr, recs)
		if err != nil {
			bad("%v", err)
		}
		d.Expr = inlined.String()
		if len(recs) == 0 {
			d.Expr = d.RuleExpr
		} else if _, err := d.parser().ParseExpr(d.Expr); err != nil {
			bad("expr with its records inlined does not parse: %v", err)
		}
		if d.UsesAbsent && d.Scope != ScopeCluster {
			bad("expr uses absent(), which fires when enforcement hides a series: scope must be cluster")
		}
	}
	if _, err := newTemplate(d.Summary); err != nil {
		bad("summary: %v", err)
	} else if valueVars.MatchString(d.Summary) {
		bad("summary must not use $value: exported test files compare annotations exactly")
	}
	for name, s := range map[string]Scenario{"fire": d.Test.Fire, "benign": d.Test.Benign} {
		if err := s.check(name == "fire"); err != nil {
			bad("test.%s: %v", name, err)
		}
	}
	return d, errors.Join(errs...)
}

func (y yamlScenario) scenario() Scenario {
	step := time.Duration(y.Interval)
	if step == 0 {
		step = ScenarioInterval
	}
	return Scenario{
		Description: strings.TrimSpace(y.Description),
		Interval:    step,
		Eval:        time.Duration(y.Eval),
		Series:      y.Series,
		Alerts:      y.Alerts,
	}
}

func (s Scenario) check(fire bool) error {
	var errs []error
	if s.Description == "" {
		errs = append(errs, errors.New("description is required"))
	}
	if s.Interval <= 0 || s.Interval%ScenarioInterval != 0 || s.Interval > 5*time.Minute {
		// Beyond 5 minutes an instant selector would go stale between
		// samples (the default lookback delta).
		errs = append(errs, fmt.Errorf("interval %v must be a whole number of minutes, at most 5m", s.Interval))
	}
	if s.Eval <= 0 || s.Eval%ScenarioInterval != 0 {
		errs = append(errs, fmt.Errorf("eval %v must be a positive whole number of minutes", s.Eval))
	}
	if len(s.Series) == 0 {
		errs = append(errs, errors.New("no series"))
	}
	for _, in := range s.Series {
		if _, _, err := in.Samples(s.Interval); err != nil {
			errs = append(errs, err)
		}
	}
	switch {
	case fire && len(s.Alerts) == 0:
		errs = append(errs, errors.New("fire data must list the alerts it raises"))
	case !fire && len(s.Alerts) > 0:
		errs = append(errs, errors.New("benign data must not list alerts"))
	}
	for _, a := range s.Alerts {
		for k := range a {
			if !model.UTF8Validation.IsValidLabelName(k) || k == model.MetricNameLabel {
				errs = append(errs, fmt.Errorf("alert label %q is not a valid label name", k))
			}
		}
	}
	return errors.Join(errs...)
}

// Sample is one point of a scenario series; Offset counts from t=0.
type Sample struct {
	Offset time.Duration
	Value  float64
}

// step is the scenario's sample interval, ScenarioInterval when unset.
func (s Scenario) step() time.Duration {
	if s.Interval > 0 {
		return s.Interval
	}
	return ScenarioInterval
}

// Samples expands the series notation into its labels and samples, step
// apart. Missing samples (_) are skipped; stale markers are refused.
func (s Series) Samples(step time.Duration) (labels.Labels, []Sample, error) {
	lbls, vals, err := stockParser.ParseSeriesDesc(s.Series + " " + s.Values)
	if err != nil {
		return labels.EmptyLabels(), nil, fmt.Errorf("series %s: %w", s.Series, err)
	}
	if lbls.Get(model.MetricNameLabel) == "" {
		return labels.EmptyLabels(), nil, fmt.Errorf("series %s: no metric name", s.Series)
	}
	var out []Sample
	for i, v := range vals {
		if v.Omitted {
			continue
		}
		if v.Histogram != nil || value.IsStaleNaN(v.Value) {
			return labels.EmptyLabels(), nil, fmt.Errorf("series %s: only float samples are supported", s.Series)
		}
		out = append(out, Sample{Offset: time.Duration(i) * step, Value: v.Value})
	}
	return lbls, out, nil
}

// parser returns the parser that reads d's expressions: the stock one, or
// the dialect parser for a detector that uses FuncSmoothing.
func (d Detector) parser() parser.Parser {
	if d.Dialect != "" {
		return dialectParser
	}
	return stockParser
}

func usesAbsent(e parser.Expr) bool {
	found := false
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		if c, ok := n.(*parser.Call); ok && (c.Func.Name == "absent" || c.Func.Name == "absent_over_time") {
			found = true
		}
		return nil
	})
	return found
}

// List returns every detector in catalog order.
func (c *Catalog) List() []Detector {
	return slices.Clone(c.detectors)
}

// Get returns the detector with the given id.
func (c *Catalog) Get(id string) (Detector, bool) {
	i, ok := c.byID[id]
	if !ok {
		return Detector{}, false
	}
	return c.detectors[i], true
}

// Technique is the value of the technique label: the ATT&CK ids joined by
// commas, or "none".
func (d Detector) Technique() string {
	if len(d.Attack) == 0 {
		return "none"
	}
	return strings.Join(d.Attack, ",")
}

// RuleLabels are the labels every alert of d carries besides the series'
// own: severity, detector and technique.
func (d Detector) RuleLabels() map[string]string {
	return map[string]string{
		LabelSeverity:  d.Severity,
		LabelDetector:  d.ID,
		LabelTechnique: d.Technique(),
	}
}

// Annotations returns the summary, description and runbook annotations for
// an alert with the given labels, expanding the summary template the way
// Prometheus does.
func (d Detector) Annotations(lbls map[string]string) (map[string]string, error) {
	summary, err := expand(d.Summary, lbls)
	if err != nil {
		return nil, fmt.Errorf("detector %s summary: %w", d.ID, err)
	}
	return map[string]string{
		"summary":     summary,
		"description": d.Description,
		"runbook":     d.Runbook,
	}, nil
}

// templateDefs are the variables Prometheus' rule manager defines before an
// annotation template (rules/alerting.go).
const templateDefs = "{{$labels := .Labels}}{{$externalLabels := .ExternalLabels}}{{$externalURL := .ExternalURL}}{{$value := .Value}}"

type templateData struct {
	Labels         map[string]string
	ExternalLabels map[string]string
	ExternalURL    string
	Value          float64
}

func newTemplate(text string) (*template.Template, error) {
	// Prometheus expands annotations with missingkey=zero; no functions are
	// allowed here, so that the catalog renders identically everywhere.
	return template.New("summary").Option("missingkey=zero").Parse(templateDefs + text)
}

func expand(text string, lbls map[string]string) (string, error) {
	t, err := newTemplate(text)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	data := templateData{Labels: maps.Clone(lbls), ExternalLabels: map[string]string{}}
	if data.Labels == nil {
		data.Labels = map[string]string{}
	}
	if err := t.Execute(&b, data); err != nil {
		return "", err
	}
	return b.String(), nil
}

// expectedAlerts returns the full label sets (alertname and rule labels
// included) of the alerts that must fire at the end of s.
func expectedAlerts(d Detector, s Scenario) []map[string]string {
	var out []map[string]string
	for _, a := range s.Alerts {
		m := maps.Clone(a)
		maps.Copy(m, d.RuleLabels())
		m[model.AlertNameLabel] = d.ID
		out = append(out, m)
	}
	slices.SortFunc(out, func(a, b map[string]string) int {
		return strings.Compare(labels.FromMap(a).String(), labels.FromMap(b).String())
	})
	return out
}

func formatFloat(v float64) string {
	return strconv.FormatFloat(v, 'g', -1, 64)
}
