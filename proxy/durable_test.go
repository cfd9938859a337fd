package proxy

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/promgate/promgate/audit"
	"github.com/promgate/promgate/config"
)

// durableSpy is a durable auditor that notes how much of the response the
// client could have had when the record was written.
type durableSpy struct {
	w       *httptest.ResponseRecorder
	atWrite []int
	fail    bool
}

func (d *durableSpy) Write(*audit.Record) error {
	d.atWrite = append(d.atWrite, d.w.Body.Len())
	if d.fail {
		return errors.New("fsync: input/output error")
	}
	return nil
}
func (d *durableSpy) Healthy() bool { return true }
func (d *durableSpy) Durable() bool { return true }

// serveDurable serves rq through f's handler with spy as a durable auditor,
// and reports whether the handler aborted the response.
func serveDurable(t *testing.T, f *fixture, spy *durableSpy, rq request) (aborted bool) {
	t.Helper()
	f.h.audit, f.h.hold = spy, holdsBack(spy)
	r := httptest.NewRequest(http.MethodGet, "https://gw.example"+rq.target, nil)
	r.TLS = verifiedState(f.certs[rq.user])
	defer func() {
		if p := recover(); p != nil {
			if p != http.ErrAbortHandler { //nolint:errorlint // a recovered panic value, compared by identity as net/http does
				panic(p)
			}
			aborted = true
		}
	}()
	f.h.ServeHTTP(spy.w, r)
	return false
}

// TestResponseHeldUntilAuditDurable checks that with a durable auditor no
// response is complete before its record's Write returns: the last byte
// follows the record.
func TestResponseHeldUntilAuditDurable(t *testing.T) {
	for _, tc := range []struct{ name, user, target string }{
		{"allowed", "alice", "/api/v1/query?query=up"},
		{"not found", "root", "/api/v1/nope"},
		{"denied", "mallory", "/api/v1/query?query=up"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			spy := &durableSpy{w: httptest.NewRecorder()}
			if serveDurable(t, f, spy, request{user: tc.user, target: tc.target}) {
				t.Fatal("response aborted although the record was written")
			}
			full := spy.w.Body.Len()
			if full == 0 || len(spy.atWrite) != 1 {
				t.Fatalf("body %d bytes, %d records", full, len(spy.atWrite))
			}
			if got := spy.atWrite[0]; got != full-1 {
				t.Errorf("the client had %d of %d bytes when the record was written, want all but the last", got, full)
			}
		})
	}
}

// TestResponseAbortedWhenAuditFails checks that a record that cannot be made
// durable aborts the response under on_failure: deny, and completes it under
// on_failure: log.
func TestResponseAbortedWhenAuditFails(t *testing.T) {
	for _, tc := range []struct {
		onFailure string
		aborted   bool
	}{{config.OnFailureDeny, true}, {config.OnFailureLog, false}} {
		t.Run(tc.onFailure, func(t *testing.T) {
			f := newFixture(t)
			cfg := *f.h.cfg
			cfg.Audit.OnFailure = tc.onFailure
			f.h.cfg = &cfg
			spy := &durableSpy{w: httptest.NewRecorder(), fail: true}
			aborted := serveDurable(t, f, spy, request{user: "alice", target: "/api/v1/query?query=up"})
			if aborted != tc.aborted {
				t.Fatalf("aborted = %v, want %v", aborted, tc.aborted)
			}
			want := `{"status":"success","data":{"resultType":"vector","result":[]}}`
			if tc.aborted {
				want = want[:len(want)-1]
			}
			if got := spy.w.Body.String(); got != want {
				t.Errorf("body = %q, want %q", got, want)
			}
		})
	}
}

// TestRecorderHold checks the hold-back itself: writes of any size, empty
// writes, and a flush before any body byte.
func TestRecorderHold(t *testing.T) {
	w := httptest.NewRecorder()
	r := &recorder{ResponseWriter: w, hold: true}
	r.Flush()
	if w.Flushed {
		t.Error("flushed headers before any body byte")
	}
	for _, s := range []string{"a", "", "bc", "def"} {
		if n, err := r.Write([]byte(s)); n != len(s) || err != nil {
			t.Fatalf("Write(%q) = %d, %v", s, n, err)
		}
	}
	if got := w.Body.String(); got != "abcde" {
		t.Errorf("before release: %q, want abcde", got)
	}
	r.Flush()
	if !w.Flushed {
		t.Error("a flush with body bytes was swallowed")
	}
	r.release()
	r.release()
	if got := w.Body.String(); got != "abcdef" || r.bytes != 6 {
		t.Errorf("after release: %q (%d bytes counted), want abcdef (6)", got, r.bytes)
	}
}

// TestResponseNamesAuditRecord checks that every answer carries the id of
// its audit record, so that a client of a fleet can find it.
func TestResponseNamesAuditRecord(t *testing.T) {
	f := newFixture(t)
	for _, rq := range []request{
		{user: "alice", target: "/api/v1/query?query=up", header: map[string]string{"X-Request-Id": "client-chosen"}},
		{user: "mallory", target: "/api/v1/query?query=up"},
		{target: "/api/v1/query?query=up"},
	} {
		w := f.do(t, rq)
		rec := f.aud.records[len(f.aud.records)-1]
		if got := w.Header().Get("X-Request-Id"); got == "" || got != rec.ID {
			t.Errorf("%s as %q: X-Request-Id %q, audit record id %q", rq.target, rq.user, got, rec.ID)
		}
	}
}

// TestRefusalCompletedWhenAuditFails checks that a refusal, which carries
// no data, is completed even when its record cannot be made durable.
func TestRefusalCompletedWhenAuditFails(t *testing.T) {
	f := newFixture(t)
	spy := &durableSpy{w: httptest.NewRecorder(), fail: true}
	if serveDurable(t, f, spy, request{user: "mallory", target: "/api/v1/query?query=up"}) {
		t.Fatal("a denial was aborted")
	}
	if spy.w.Code != http.StatusForbidden || !strings.HasSuffix(spy.w.Body.String(), "}\n") {
		t.Errorf("denial: %d %q, want a whole 403", spy.w.Code, spy.w.Body.String())
	}
}
