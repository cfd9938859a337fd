package proxy

import (
	"net/http"
	"sort"
	"strings"

	"github.com/promgate/promgate/authz"
)

// uiPath is the security console (console.go, package console): server-
// rendered HTML with no script. / and /ui redirect a browser to it.
const uiPath = "/ui/"

func isUIPath(p string) bool { return p == uiPath || p == "/ui" || strings.HasPrefix(p, uiPath) }

// isConsole reports whether r is for the console: a path under /ui/, or /
// from a browser, which is redirected there. / from an API client stays a
// path the gateway does not serve.
func isConsole(r *http.Request) bool {
	return isUIPath(r.URL.Path) || (r.URL.Path == "/" && wantsHTML(r))
}

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

type uiLabel struct {
	Name    string
	Values  []string
	Regexes []string
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
