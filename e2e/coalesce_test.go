//go:build e2e

package e2e

import (
	"bytes"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestCoalesceIdenticalQueries sends the same query at once as eight
// team-a and four team-b requests through the main gateway to the real
// Prometheus, which the recording proxy holds back for a moment so that
// they overlap. Each team's identical upstream requests must share one
// answer (upstream.coalesce is on by default), the two teams never share
// theirs, every answer is confined to its caller, and the shared requests
// are counted in promgate_upstream_coalesced_total.
func TestCoalesceIdenticalQueries(t *testing.T) {
	const marker = "coalesce-e2e"
	env.rec.mu.Lock()
	env.rec.slowMarker = marker
	env.rec.mu.Unlock()
	t.Cleanup(func() {
		env.rec.mu.Lock()
		env.rec.slowMarker = ""
		env.rec.mu.Unlock()
	})
	coalescedName := `promgate_upstream_coalesced_total{route="query"}`
	coalescedBefore := metricValue(t, env.main, coalescedName)
	before := env.rec.count()
	q := url.Values{
		"query": {`up{job!="` + marker + `"}`},
		"time":  {strconv.FormatInt(time.Now().Unix(), 10)},
	}
	whos := []caller{callerTeamA, callerTeamA, callerTeamB, callerTeamA, callerTeamA, callerTeamB,
		callerTeamA, callerTeamA, callerTeamB, callerTeamA, callerTeamA, callerTeamB}
	results := make([]*result, len(whos))
	errs := make([]error, len(whos))
	clients := make([]*client, len(whos))
	for i, who := range whos {
		clients[i] = who.client(t)
	}
	var wg sync.WaitGroup
	for i := range whos {
		wg.Go(func() { results[i], errs[i] = clients[i].try(request{path: "/api/v1/query", query: q}) })
	}
	wg.Wait()

	bodies := map[string][]byte{}
	for i, who := range whos {
		if errs[i] != nil {
			t.Fatalf("request %d as %s: %v", i, who.name, errs[i])
		}
		res := results[i]
		res.checkSeen(t, vectorNS, who.allowed, who.own, nil)
		if b, ok := bodies[who.name]; ok && !bytes.Equal(b, res.body) {
			t.Errorf("%s: two answers to the same query differ:\n%s\n%s", who.name, b, res.body)
		}
		bodies[who.name] = res.body
	}
	if bytes.Equal(bodies[callerTeamA.name], bodies[callerTeamB.name]) {
		t.Errorf("team-a and team-b got the same answer: %s", bodies[callerTeamA.name])
	}

	// What reached Prometheus: each team's enforced query, ideally once.
	perTeam := map[string]int{}
	var forwarded int
	for _, f := range env.rec.since(before) {
		query := f.URLQuery.Get("query")
		if !strings.Contains(query, marker) {
			continue
		}
		forwarded++
		switch {
		case strings.Contains(query, nsTeamA) && !strings.Contains(query, nsTeamB):
			perTeam[nsTeamA]++
		case strings.Contains(query, nsTeamB) && !strings.Contains(query, nsTeamA):
			perTeam[nsTeamB]++
		default:
			t.Errorf("forwarded query %q is confined to neither team", query)
		}
	}
	// Twelve requests were started within milliseconds and the recorder
	// holds each forwarded one for 700 ms: each team's should share one
	// flight. A loaded machine may start a second flight for a team.
	if perTeam[nsTeamA] < 1 || perTeam[nsTeamA] > 2 || perTeam[nsTeamB] < 1 || perTeam[nsTeamB] > 2 {
		t.Errorf("Prometheus saw %d team-a and %d team-b requests for 8 and 4 identical ones; want 1 (at most 2) each", perTeam[nsTeamA], perTeam[nsTeamB])
	}
	got := metricValue(t, env.main, coalescedName) - coalescedBefore
	if want := float64(len(whos) - forwarded); got != want {
		t.Errorf("%s grew by %v, want %v (%d requests, %d forwarded)", coalescedName, got, want, len(whos), forwarded)
	}
	t.Logf("%d identical requests, %d reached Prometheus (team-a %d, team-b %d), %v coalesced", len(whos), forwarded, perTeam[nsTeamA], perTeam[nsTeamB], got)

	// Nothing is cached: the same query again reaches Prometheus again.
	n := env.rec.count()
	res, err := callerTeamA.client(t).try(request{path: "/api/v1/query", query: q})
	if err != nil || res.status != http.StatusOK {
		t.Fatalf("repeat: %v %v", res, err)
	}
	if env.rec.count() != n+1 {
		t.Errorf("a later identical request reached Prometheus %d times, want once", env.rec.count()-n)
	}
}
