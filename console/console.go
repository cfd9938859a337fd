package console

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"fmt"
	"html/template"
	"io"
	"net/http"
	"strings"
	"time"
)

//go:embed templates/*.html templates/console.css
var files embed.FS

// Paths of the console's pages.
const (
	PathOverview  = "/ui/"
	PathDetectors = "/ui/detectors/"
	PathQuery     = "/ui/query"
	PathTopology  = "/ui/topology"
	PathAdmin     = "/ui/admin"
)

// Base is what every page carries: who the caller is and what the header
// links to.
type Base struct {
	// Title is the page's own title; the document title appends promgate.
	Title string
	// Nav is the active navigation entry: overview, query, topology, admin.
	Nav string
	// Subject, Method and Groups say who the caller is.
	Subject string
	Method  string
	Groups  []string
	// SignOut is the sign-out form's action, or "" without a session.
	SignOut string
	// Restricted reports whether the caller's queries are confined.
	Restricted bool
	// Admin shows the administrator's page in the navigation.
	Admin bool
	// Scope lists the caller's confinement as label matchers.
	Scope []string
	// Now is when the page was rendered.
	Now time.Time
}

// Detector is one detector as a page lists it.
type Detector struct {
	ID, Title, Description, Severity, Scope, For string
	// Techniques are the ATT&CK ids with their names where known.
	Techniques []Technique
	// State is firing, pending, inactive, unknown or "" when not shown;
	// Active and Firing count its alerts (or series returned now).
	State          string
	Active, Firing int
	// Spark is a 24-hour sparkline of the detector's query, or empty.
	Spark template.HTML
	// Live reports that the state comes from evaluating the query now
	// for the caller, not from the background evaluator.
	Live bool
	// Error is why the detector could not be evaluated, if it could not.
	Error string
}

// Technique is one ATT&CK id.
type Technique struct {
	ID, Name string
	Tactic   bool
}

// URL is the technique's page on attack.mitre.org.
func (t Technique) URL() string {
	if t.Tactic {
		return "https://attack.mitre.org/tactics/" + t.ID + "/"
	}
	return "https://attack.mitre.org/techniques/" + strings.ReplaceAll(t.ID, ".", "/") + "/"
}

// Count is one row of a count table.
type Count struct {
	Name  string
	Count int
}

// Overview is the page /ui/.
type Overview struct {
	Base
	// Active are the firing and pending detectors, firing first.
	Active []Detector
	// Quiet are the others that ran for the caller.
	Quiet []Detector
	// BySeverity and ByTactic count the active detectors.
	BySeverity []Count
	ByTactic   []Count
	Firing     int
	Pending    int
	// Hidden counts the detectors that cannot run for the caller, and
	// HiddenWhy says why.
	Hidden    int
	HiddenWhy string
	// Evaluator says where the state comes from.
	Evaluator string
}

// Row is one series of a result table.
type Row struct {
	Labels []Label
	Value  string
}

// Label is one label pair.
type Label struct{ Name, Value string }

// DetectorPage is /ui/detectors/<id>.
type DetectorPage struct {
	Base
	Detector         Detector
	Runbook, Summary string
	Sources          []string
	Requires         string
	Query, Enforced  string
	// Refused says why the detector does not run for the caller.
	Refused string
	Rows    []Row
	Graph   template.HTML
	// GraphQuery is what the graph draws (the value the threshold
	// compares), and Threshold the threshold as text.
	GraphQuery string
	Threshold  string
	Window     string
	Windows    []string
	Export     string
}

// QueryPage is /ui/query.
type QueryPage struct {
	Base
	Query    string
	Enforced string
	Window   string
	Windows  []string
	Rows     []Row
	Scalar   string
	Graph    template.HTML
	// Error explains a refusal or a failure; ErrorKind is its API type.
	Error     string
	ErrorKind string
	Examples  []string
	Truncated int
}

// Edge is one service-to-service edge.
type Edge struct {
	From, To string
	Rate     string
	New      bool
}

// PodChange counts pods that appeared or disappeared in one workload.
type PodChange struct {
	Workload          string
	Appeared, Removed int
}

// TopologyPage is /ui/topology.
type TopologyPage struct {
	Base
	Compare  string
	Compares []string
	Edges    []Edge
	Graph    template.HTML
	Pods     []PodChange
	// PodsMissing reports that kube_pod_info does not reach back to
	// Compare, so no pod change can be counted.
	PodsMissing bool
	NewEdges    int
	Error       string
}

// Fact is one named value of the admin page.
type Fact struct{ Name, Value string }

// AdminPage is /ui/admin, for unrestricted callers only.
type AdminPage struct {
	Base
	Refusals, Probes, AuthFailures, AuthClients []Count
	Audit, AuditFiles, Policy                   []Fact
	AuditPath                                   string
	// The "what would they see" form and the policy's answer.
	EvalSubject, EvalGroups, EvalMethod  string
	EvalMethods                          []string
	EvalDone, EvalAllow                  bool
	EvalReason, EvalRevision, EvalTenant string
	EvalScope                            []string
	EvalError                            string
}

// Message is a page that only says something: the credential needed, a
// denial, a page not found.
type Message struct {
	Base
	Status  int
	Heading string
	Text    string
	// Login is the sign-in link, when a login is configured.
	Login string
}

var (
	css       []byte
	styleHash string
	pages     = map[string]*template.Template{}
)

func init() {
	b, err := files.ReadFile("templates/console.css")
	if err != nil {
		panic(err)
	}
	css = bytes.TrimSpace(b)
	sum := sha256.Sum256(css)
	styleHash = "sha256-" + base64.StdEncoding.EncodeToString(sum[:])
	funcs := template.FuncMap{
		"style": func() template.CSS { return template.CSS(css) }, //nolint:gosec // G203: the embedded style sheet, not input
		"join":  strings.Join,
		"lower": strings.ToLower,
		"dict": func(kv ...any) map[string]any {
			m := map[string]any{}
			for i := 0; i+1 < len(kv); i += 2 {
				m[fmt.Sprint(kv[i])] = kv[i+1]
			}
			return m
		},
	}
	layout := template.Must(template.New("layout.html").Funcs(funcs).ParseFS(files, "templates/layout.html"))
	for _, name := range []string{"overview", "detector", "query", "topology", "admin", "message"} {
		t := template.Must(layout.Clone())
		pages[name] = template.Must(t.ParseFS(files, "templates/"+name+".html"))
	}
}

// CSP is the Content-Security-Policy of every console page: nothing but the
// page itself and its one hashed style sheet; no script at all.
func CSP() string {
	return "default-src 'none'; style-src '" + styleHash + "'; img-src data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
}

// SetHeaders sets the security headers of a console page.
func SetHeaders(h http.Header) {
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", CSP())
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
}

// Render writes page name (overview, detector, query, topology, admin or
// message) with data.
func Render(w io.Writer, name string, data any) error {
	t, ok := pages[name]
	if !ok {
		return fmt.Errorf("console: no page %q", name)
	}
	return t.ExecuteTemplate(w, "layout.html", data)
}
