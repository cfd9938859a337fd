package proxy

import (
	"context"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/promgate/promgate/authn"
	"github.com/promgate/promgate/authz"
	"github.com/promgate/promgate/console"
	"github.com/promgate/promgate/promapi"
)

// adminTop bounds the rows of each count table of the admin page.
const adminTop = 20

var adminMethods = []string{string(authn.MethodMTLS), string(authn.MethodOIDC), string(authn.MethodSession)}

// serveAdmin serves /ui/admin: refusals and authentication failures, the
// audit chain and the policy's status from the gateway's own metrics, and
// "what would they see": the policy asked for a query by an identity the
// administrator types (as `promgate policy eval` does). Only an
// unrestricted caller gets it; the page names every subject and network
// the metrics hold.
func (h *Handler) serveAdmin(w http.ResponseWriter, r *http.Request, st *state, params url.Values) error {
	run, err := h.consoleAdmit(r, st, nil)
	if err != nil {
		return h.consoleRefusal(w, r, st, err)
	}
	run.release()
	if !run.g.en.Unrestricted() {
		return h.consoleRefusal(w, r, st, promapi.Errorf(promapi.ErrForbidden,
			"access denied for %s: the admin page is served to unrestricted callers only, because it names every caller and network", st.identity.Subject))
	}
	page := console.AdminPage{Base: h.consoleBase(st, run.g, "Admin", "admin"), AuditPath: h.cfg.Audit.Path, EvalMethods: adminMethods}
	families := map[string]*dto.MetricFamily{}
	if h.gather != nil {
		mfs, err := h.gather.Gather()
		if err != nil {
			h.log.Warn("gather own metrics for the admin page", "err", err)
		}
		for _, mf := range mfs {
			families[mf.GetName()] = mf
		}
	}
	counts := func(name string, keep func(map[string]string) bool, key func(map[string]string) string) []console.Count {
		by := map[string]float64{}
		for _, m := range families[name].GetMetric() {
			l := map[string]string{}
			for _, lp := range m.GetLabel() {
				l[lp.GetName()] = lp.GetValue()
			}
			if keep != nil && !keep(l) {
				continue
			}
			v := m.GetCounter().GetValue()
			if v > 0 {
				by[key(l)] += v
			}
		}
		var out []console.Count
		for k, v := range by {
			out = append(out, console.Count{Name: k, Count: int(v)})
		}
		sort.Slice(out, func(i, j int) bool {
			if out[i].Count != out[j].Count {
				return out[i].Count > out[j].Count
			}
			return out[i].Name < out[j].Name
		})
		if len(out) > adminTop {
			out = out[:adminTop]
		}
		return out
	}
	page.Refusals = counts("promgate_requests_total",
		func(l map[string]string) bool { return strings.HasPrefix(l["code"], "4") },
		func(l map[string]string) string { return l["route"] + " " + l["code"] })
	page.Probes = counts("promgate_enforcement_refusals_total", nil,
		func(l map[string]string) string { return l["subject"] + " asked for " + l["label"] })
	page.AuthFailures = counts("promgate_authn_failures_total", nil,
		func(l map[string]string) string { return l["method"] + ": " + l["reason"] })
	page.AuthClients = counts("promgate_client_authn_failures_total", nil,
		func(l map[string]string) string { return l["client"] + " (" + l["method"] + ")" })

	value := func(name string) (float64, bool) {
		ms := families[name].GetMetric()
		if len(ms) == 0 {
			return 0, false
		}
		m := ms[0]
		switch {
		case m.GetCounter() != nil:
			return m.GetCounter().GetValue(), true
		case m.GetGauge() != nil:
			return m.GetGauge().GetValue(), true
		}
		return 0, false
	}
	fact := func(facts *[]console.Fact, label, name string, format func(float64) string) {
		if v, ok := value(name); ok {
			*facts = append(*facts, console.Fact{Name: label, Value: format(v)})
		}
	}
	num := func(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }
	when := func(v float64) string {
		if v <= 0 {
			return "never"
		}
		return time.UnixMilli(int64(v * 1000)).UTC().Format("2006-01-02 15:04:05 UTC")
	}
	yes := func(v float64) string {
		if v == 1 {
			return "yes"
		}
		return "no"
	}
	healthy := "yes"
	if !h.audit.Healthy() {
		healthy = "no: records cannot be written"
	}
	page.Audit = append(page.Audit, console.Fact{Name: "writing", Value: healthy})
	for _, m := range families["promgate_audit_last_hash_info"].GetMetric() {
		for _, lp := range m.GetLabel() {
			if lp.GetName() == "hash" {
				page.Audit = append(page.Audit, console.Fact{Name: "last hash (first 16 hex digits)", Value: lp.GetValue()})
			}
		}
	}
	fact(&page.Audit, "records written", "promgate_audit_records_total", num)
	fact(&page.Audit, "write failures", "promgate_audit_failures_total", num)
	fact(&page.Audit, "rotations that deleted an unshipped file", "promgate_audit_unshipped_rotations_total", num)
	if p := h.cfg.Audit.Path; p != "" && p != "-" {
		files, _ := filepath.Glob(p + "*")
		slices.Sort(files)
		for _, f := range files {
			if fi, err := os.Stat(f); err == nil && fi.Mode().IsRegular() {
				page.AuditFiles = append(page.AuditFiles, console.Fact{Name: filepath.Base(f), Value: strconv.FormatInt(fi.Size(), 10)})
			}
		}
	}

	page.Policy = append(page.Policy, console.Fact{Name: "revision deciding now", Value: st.revision})
	if f, ok := h.authz.(interface{ Files() []string }); ok {
		var names []string
		for _, n := range f.Files() {
			names = append(names, filepath.Base(n))
		}
		page.Policy = append(page.Policy, console.Fact{Name: "files", Value: strings.Join(names, ", ")})
	}
	fact(&page.Policy, "last policy reload", "promgate_policy_last_reload_timestamp_seconds", when)
	for _, c := range counts("promgate_policy_reloads_total", nil, func(l map[string]string) string { return l["result"] }) {
		page.Policy = append(page.Policy, console.Fact{Name: "policy reloads, " + c.Name, Value: strconv.Itoa(c.Count)})
	}
	fact(&page.Policy, "last configuration reload successful", "promgate_config_last_reload_successful", yes)
	fact(&page.Policy, "last successful reload", "promgate_config_last_reload_success_timestamp_seconds", when)

	page.EvalSubject, page.EvalGroups, page.EvalMethod = params.Get("subject"), params.Get("groups"), params.Get("method")
	if !slices.Contains(adminMethods, page.EvalMethod) {
		page.EvalMethod = string(authn.MethodMTLS)
	}
	if page.EvalSubject != "" {
		h.adminEval(r.Context(), &page)
	}
	return writePage(w, r, http.StatusOK, "admin", page)
}

// adminEval asks the policy what the typed identity may query. It only
// asks; nothing is read or forwarded as that identity.
func (h *Handler) adminEval(ctx context.Context, page *console.AdminPage) {
	if len(page.EvalSubject) > 256 || len(page.EvalGroups) > 1024 {
		page.EvalError = "the subject or the groups are too long"
		return
	}
	id := &authn.Identity{Method: authn.Method(page.EvalMethod), Subject: page.EvalSubject}
	for _, g := range strings.Split(page.EvalGroups, ",") {
		if g = strings.TrimSpace(g); g != "" {
			id.Groups = append(id.Groups, g)
		}
	}
	dec, err := h.authz.Decide(ctx, authz.Input{Identity: id,
		Request: authz.Request{Method: http.MethodGet, Path: "/api/v1/query", Route: RouteQuery}})
	page.EvalDone, page.EvalRevision = true, dec.Revision
	if err != nil {
		page.EvalDone = false
		page.EvalError = "the policy could not decide; the gateway log has the detail"
		h.log.Warn("admin page policy evaluation", "err", err)
		return
	}
	page.EvalAllow, page.EvalReason, page.EvalTenant = dec.Allow, dec.Reason, dec.Tenant
	if !dec.Allow {
		return
	}
	for _, l := range uiLabels(dec) {
		for _, v := range l.Values {
			page.EvalScope = append(page.EvalScope, l.Name+`="`+v+`"`)
		}
		for _, re := range l.Regexes {
			page.EvalScope = append(page.EvalScope, l.Name+`=~"`+re+`"`)
		}
	}
	page.EvalScope = append(page.EvalScope, dec.Matchers...)
}
