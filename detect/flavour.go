package detect

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/prometheus/promql/parser"
)

// Holt's double exponential smoothing has two names. Prometheus 2.x calls it
// holt_winters; 3.0 renamed it double_exponential_smoothing and put it behind
// --enable-feature=promql-experimental-functions. The catalog writes the 3.x
// name; the export renames it for a 2.x upstream and leaves the detector out
// for a 3.x upstream without the feature.
const (
	FuncSmoothing       = "double_exponential_smoothing"
	FuncSmoothingLegacy = "holt_winters"
	// FeatureExperimental is the 3.x feature flag that enables
	// double_exponential_smoothing.
	FeatureExperimental = "promql-experimental-functions"
)

// dialectParser parses the catalog's dialect-specific expressions: the stock
// parser plus experimental functions, of which only FuncSmoothing is allowed
// (detector checks).
var dialectParser = parser.NewParser(parser.Options{EnableExperimentalFunctions: true})

// Flavour is the PromQL dialect of the Prometheus that will load the rules.
type Flavour struct {
	// Major is the Prometheus major version, 2 or 3.
	Major int
	// Experimental reports whether a 3.x Prometheus runs with
	// --enable-feature=promql-experimental-functions.
	Experimental bool
}

// DefaultFlavour is what an export targets when it is not told: a 3.x
// Prometheus without feature flags, which loads every portable detector and
// none that needs double_exponential_smoothing.
var DefaultFlavour = Flavour{Major: 3}

func (f Flavour) String() string {
	if f.Major == 3 && f.Experimental {
		return "Prometheus 3.x with " + FeatureExperimental
	}
	return fmt.Sprintf("Prometheus %d.x", f.Major)
}

// ParseFlavour reads a Prometheus version ("2.42.0", "v3.5.0",
// "2.42.0+ds") and the features it runs with (the enable-feature flag's
// values, comma-separated or not).
func ParseFlavour(version string, features ...string) (Flavour, error) {
	v := strings.TrimPrefix(strings.TrimSpace(version), "v")
	majorStr, _, _ := strings.Cut(v, ".")
	major, err := strconv.Atoi(majorStr)
	if err != nil || (major != 2 && major != 3) {
		return Flavour{}, fmt.Errorf("prometheus version %q: want 2.x or 3.x", version)
	}
	f := Flavour{Major: major}
	for _, list := range features {
		for feat := range strings.SplitSeq(list, ",") {
			if strings.TrimSpace(feat) == FeatureExperimental && major == 3 {
				f.Experimental = true
			}
		}
	}
	return f, nil
}

// UpstreamFlavour asks the Prometheus at base for its version
// (/api/v1/status/buildinfo) and flags (/api/v1/status/flags). A Prometheus
// that does not serve its flags (or a gateway that does not forward them) is
// taken to run without feature flags.
func UpstreamFlavour(ctx context.Context, client *http.Client, base string) (Flavour, error) {
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return Flavour{}, fmt.Errorf("upstream %q: not an http or https URL", base)
	}
	get := func(path string, v any) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.JoinPath(path).String(), nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close() //nolint:errcheck // read-only response
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET %s: %s", path, resp.Status)
		}
		body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		if err != nil {
			return fmt.Errorf("GET %s: %w", path, err)
		}
		env := struct {
			Status string          `json:"status"`
			Data   json.RawMessage `json:"data"`
		}{}
		if err := json.Unmarshal(body, &env); err != nil || env.Status != "success" {
			return fmt.Errorf("GET %s: not a Prometheus API answer", path)
		}
		return json.Unmarshal(env.Data, v)
	}
	var build struct {
		Version string `json:"version"`
	}
	if err := get("/api/v1/status/buildinfo", &build); err != nil {
		return Flavour{}, fmt.Errorf("detect the upstream's version: %w", err)
	}
	var flags map[string]string
	if err := get("/api/v1/status/flags", &flags); err != nil {
		flags = nil
	}
	return ParseFlavour(build.Version, flags["enable-feature"])
}

// Supports reports whether a Prometheus of flavour f can load d.
func (f Flavour) Supports(d Detector) bool {
	return d.Dialect == "" || f.Major == 2 || f.Experimental
}

// Adapt returns the detectors of ds that f can load, with their rule
// expressions written in f's dialect, and the ids of those it cannot.
func (f Flavour) Adapt(ds []Detector) ([]Detector, []string, error) {
	var out []Detector
	var skipped []string
	for _, d := range ds {
		if !f.Supports(d) {
			skipped = append(skipped, d.ID)
			continue
		}
		if d.Dialect != "" && f.Major == 2 {
			e, err := dialectParser.ParseExpr(d.RuleExpr)
			if err != nil {
				return nil, nil, fmt.Errorf("detector %s: %w", d.ID, err)
			}
			parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
				if c, ok := n.(*parser.Call); ok && c.Func.Name == FuncSmoothing {
					legacy := *c.Func
					legacy.Name = FuncSmoothingLegacy
					legacy.Experimental = false
					c.Func = &legacy
				}
				return nil
			})
			d.RuleExpr = e.String()
		}
		out = append(out, d)
	}
	return out, skipped, nil
}

// dialectOf returns the dialect-specific function e calls, or "" for
// portable PromQL. Any experimental function other than FuncSmoothing is an
// error.
func dialectOf(e parser.Expr) (string, error) {
	var dialect string
	var errs []error
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		if c, ok := n.(*parser.Call); ok && c.Func.Experimental {
			if c.Func.Name != FuncSmoothing {
				errs = append(errs, fmt.Errorf("uses experimental function %s", c.Func.Name))
				return nil
			}
			dialect = FuncSmoothing
		}
		return nil
	})
	return dialect, errors.Join(errs...)
}

// Portable returns the catalog without the detectors whose expressions only
// some Prometheus versions accept (Dialect set). The gateway evaluates and
// serves this one: it cannot know whether its upstream speaks holt_winters,
// double_exponential_smoothing or neither, and its own enforcement parses
// queries as a stock Prometheus 3.x does.
func (c *Catalog) Portable() *Catalog {
	out := &Catalog{byID: map[string]int{}}
	for _, d := range c.detectors {
		if d.Dialect == "" {
			out.byID[d.ID] = len(out.detectors)
			out.detectors = append(out.detectors, d)
		}
	}
	return out
}

// Parser returns the parser that reads d's expressions: the stock one, or
// one with experimental functions for a detector with a Dialect.
func (d Detector) Parser() parser.Parser { return d.parser() }

// Step is the scenario's sample interval, ScenarioInterval when unset.
func (s Scenario) Step() time.Duration { return s.step() }
