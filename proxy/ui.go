package proxy

import (
	"bytes"
	"html/template"
	"net/http"
	"sort"
	"strings"

	"github.com/promgate/promgate/authn"
	"github.com/promgate/promgate/authz"
	"github.com/promgate/promgate/detect"
	"github.com/promgate/promgate/promapi"
)

// uiPath is the gateway's own page: who am I, what may I see, and the
// detectors with their state. It is server-rendered HTML with no script.
const uiPath = "/ui/"

func isUIPath(p string) bool { return p == uiPath || p == "/ui" || strings.HasPrefix(p, uiPath) }

// wantsHTML reports whether a browser navigates to the page, so that an
// anonymous browser is sent to the login instead of getting JSON.
func wantsHTML(r *http.Request) bool {
	if r.Method != http.MethodGet {
		return false
	}
	if m := r.Header.Get("Sec-Fetch-Mode"); m != "" {
		return m == "navigate"
	}
	return strings.Contains(r.Header.Get("Accept"), "text/html")
}

type uiData struct {
	Identity   *authn.Identity
	Decision   authz.Decision
	Denied     string
	Restricted bool
	Labels     []uiLabel
	Matchers   []string
	Detectors  []uiDetector
	Session    bool
	SignOut    string
}

type uiLabel struct {
	Name    string
	Values  []string
	Regexes []string
}

type uiDetector struct {
	detect.Summary
	Runnable bool
}

var uiTemplate = template.Must(template.New("ui").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>promgate</title>
<style>body{font:14px system-ui,sans-serif;margin:2em;max-width:70em}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left;vertical-align:top}code{background:#f4f4f4}.firing{color:#b00;font-weight:bold}.pending{color:#a60}</style>
</head><body>
<h1>promgate</h1>
<h2>Who am I</h2>
<table>
<tr><th>subject</th><td>{{.Identity.Subject}}</td></tr>
<tr><th>method</th><td>{{.Identity.Method}}</td></tr>
<tr><th>groups</th><td>{{range $i, $g := .Identity.Groups}}{{if $i}}, {{end}}{{$g}}{{else}}none{{end}}</td></tr>
{{with .Identity.Issuer}}<tr><th>issuer</th><td>{{.}}</td></tr>{{end}}
{{with .Identity.Certificate}}<tr><th>certificate</th><td>{{.Subject}}<br><code>sha256 {{.FingerprintSHA256}}</code></td></tr>{{end}}
</table>
{{if .Session}}<form method="post" action="{{.SignOut}}"><p><button type="submit">Sign out</button></p></form>{{end}}
<h2>What may I see</h2>
{{if .Denied}}<p>Access denied: {{.Denied}}</p>
{{else if not .Restricted}}<p>Everything: your access is not restricted by label. ({{.Decision.Reason}})</p>
{{else}}<p>{{.Decision.Reason}}</p>
<table><tr><th>label</th><th>allowed values</th></tr>
{{range .Labels}}<tr><td><code>{{.Name}}</code></td><td>{{range $i, $v := .Values}}{{if $i}}, {{end}}<code>{{$v}}</code>{{end}}{{range .Regexes}} <code>=~{{.}}</code>{{end}}</td></tr>{{end}}
</table>
{{with .Matchers}}<p>Every selector also carries: {{range .}}<code>{{.}}</code> {{end}}</p>{{end}}
{{with .Decision.Tenant}}<p>Tenant: <code>{{.}}</code></p>{{end}}
{{end}}
<h2>Detectors</h2>
{{if .Restricted}}<p>Detectors marked "no" read cluster-wide data and run only for unrestricted callers. The background evaluator's state is shown only to them.</p>{{end}}
<table><tr><th>detector</th><th>severity</th><th>scope</th><th>for you</th>{{if not .Restricted}}<th>state</th>{{end}}<th>what to do</th></tr>
{{range .Detectors}}<tr><td><code>{{.ID}}</code><br>{{.Title}}</td><td>{{.Severity}}</td><td>{{.Scope}}</td><td>{{if .Runnable}}<a href="/api/promgate/v1/detectors/{{.ID}}">evaluate</a>{{else}}no{{end}}</td>{{if not $.Restricted}}<td>{{with .State}}<span class="{{.State}}">{{.State}}</span>{{if .Firing}} ({{.Firing}}){{end}}{{else}}evaluator off{{end}}</td>{{end}}<td>{{.Runbook}}</td></tr>
{{end}}</table>
</body></html>
`))

// serveUI renders the page for the caller. The decision is asked for route
// "ui" like any other; a denial is shown on the page.
func (h *Handler) serveUI(w http.ResponseWriter, r *http.Request, st *state) error {
	if r.URL.Path != uiPath || (r.URL.RawPath != "" && r.URL.RawPath != r.URL.Path) {
		return promapi.Errorf(promapi.ErrNotFound, "not found: this path is not served by the gateway")
	}
	id := st.identity
	data := uiData{Identity: id, Session: id.Method == authn.MethodSession, SignOut: authn.PathSignOut}
	status := http.StatusOK
	g, err := h.admit(r.Context(), r, st, &ask{route: RouteUI, kind: kindPlain})
	st.tr.leave()
	if err != nil {
		e := promapi.As(err, st.id)
		if e.Type != promapi.ErrForbidden {
			// A rate limit or a policy that could not decide is not a
			// denial; it gets its own status and the API's error shape.
			return err
		}
		status = http.StatusForbidden
		data.Denied = e.Msg
		data.Restricted = true
		st.err = err
	} else {
		data.Decision = g.dec
		data.Restricted = !g.en.Unrestricted()
		data.Labels = uiLabels(g.dec)
		data.Matchers = g.dec.Matchers
	}
	if h.detectors != nil {
		var state map[string]detect.State
		if !data.Restricted && h.detectorState != nil {
			state = h.detectorState()
		}
		for _, s := range h.detectors.Summaries(state) {
			data.Detectors = append(data.Detectors, uiDetector{Summary: s, Runnable: status == http.StatusOK && (!data.Restricted || s.Restricted)})
		}
	}
	var buf bytes.Buffer
	if err := uiTemplate.Execute(&buf, data); err != nil {
		return err
	}
	hd := w.Header()
	hd.Set("Content-Type", "text/html; charset=utf-8")
	hd.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	hd.Set("X-Frame-Options", "DENY")
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Referrer-Policy", "no-referrer")
	hd.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	if r.Method == http.MethodGet {
		_, _ = w.Write(buf.Bytes())
	}
	return nil
}

// uiLabels lists the decision's enforced labels with their values, sorted.
func uiLabels(dec authz.Decision) []uiLabel {
	names := map[string]bool{}
	for n := range dec.Enforce {
		names[n] = true
	}
	for n := range dec.EnforceRegex {
		names[n] = true
	}
	var out []uiLabel
	for n := range names {
		out = append(out, uiLabel{Name: n, Values: dec.Enforce[n], Regexes: dec.EnforceRegex[n]})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}
