package detect

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestParseFlavour(t *testing.T) {
	tests := []struct {
		version  string
		features []string
		want     Flavour
		wantErr  bool
	}{
		{"2.42.0", nil, Flavour{Major: 2}, false},
		{"2.42.0+ds", []string{FeatureExperimental}, Flavour{Major: 2}, false},
		{"v3.5.0", nil, Flavour{Major: 3}, false},
		{"3.7.1", []string{"exemplar-storage," + FeatureExperimental}, Flavour{Major: 3, Experimental: true}, false},
		{"3.7.1", []string{"exemplar-storage", FeatureExperimental}, Flavour{Major: 3, Experimental: true}, false},
		{"1.8.2", nil, Flavour{}, true},
		{"latest", nil, Flavour{}, true},
		{"", nil, Flavour{}, true},
	}
	for _, tc := range tests {
		got, err := ParseFlavour(tc.version, tc.features...)
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("ParseFlavour(%q, %q) = %+v, %v; want %+v, error %v", tc.version, tc.features, got, err, tc.want, tc.wantErr)
		}
	}
}

// TestAdapt checks the three ways a smoothing detector is exported.
func TestAdapt(t *testing.T) {
	c := mustLoad(t)
	d, ok := c.Get("gateway_query_rate_forecast")
	if !ok || d.Dialect != FuncSmoothing {
		t.Fatalf("gateway_query_rate_forecast: dialect %q", d.Dialect)
	}
	portable, _ := c.Get("failed_login_spike")
	for _, tc := range []struct {
		f        Flavour
		wantFunc string // "" when the detector is left out
	}{
		{Flavour{Major: 2}, FuncSmoothingLegacy},
		{Flavour{Major: 3}, ""},
		{Flavour{Major: 3, Experimental: true}, FuncSmoothing},
	} {
		got, skipped, err := tc.f.Adapt([]Detector{portable, d})
		if err != nil {
			t.Fatal(err)
		}
		if got[0].RuleExpr != portable.RuleExpr {
			t.Errorf("%s: portable detector changed: %q", tc.f, got[0].RuleExpr)
		}
		if tc.wantFunc == "" {
			if len(got) != 1 || len(skipped) != 1 || skipped[0] != d.ID {
				t.Errorf("%s: kept %d, skipped %v; want the smoothing detector left out", tc.f, len(got), skipped)
			}
			continue
		}
		if len(got) != 2 || len(skipped) != 0 {
			t.Fatalf("%s: kept %d, skipped %v", tc.f, len(got), skipped)
		}
		other := FuncSmoothing
		if tc.wantFunc == FuncSmoothing {
			other = FuncSmoothingLegacy
		}
		if e := got[1].RuleExpr; !strings.Contains(e, tc.wantFunc+"(") || strings.Contains(e, other+"(") {
			t.Errorf("%s: rule expr %q, want %s", tc.f, e, tc.wantFunc)
		}
		if got[1].Expr != d.Expr {
			t.Errorf("%s: Adapt changed the self-contained expression", tc.f)
		}
	}
}

func TestUpstreamFlavour(t *testing.T) {
	serve := func(build, flags string, flagsStatus int) *httptest.Server {
		mux := http.NewServeMux()
		mux.HandleFunc("GET /api/v1/status/buildinfo", func(w http.ResponseWriter, _ *http.Request) {
			_, _ = w.Write([]byte(build))
		})
		mux.HandleFunc("GET /api/v1/status/flags", func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(flagsStatus)
			_, _ = w.Write([]byte(flags))
		})
		s := httptest.NewServer(mux)
		t.Cleanup(s.Close)
		return s
	}
	tests := []struct {
		name, build, flags string
		flagsStatus        int
		want               Flavour
		wantErr            string
	}{
		{"2.x", `{"status":"success","data":{"version":"2.42.0+ds"}}`, `{"status":"success","data":{"enable-feature":""}}`, 200, Flavour{Major: 2}, ""},
		{"3.x with the feature", `{"status":"success","data":{"version":"3.5.0"}}`, `{"status":"success","data":{"enable-feature":"` + FeatureExperimental + `"}}`, 200, Flavour{Major: 3, Experimental: true}, ""},
		{"3.x, flags not served", `{"status":"success","data":{"version":"3.5.0"}}`, `forbidden`, 403, Flavour{Major: 3}, ""},
		{"not Prometheus", `<html>`, ``, 200, Flavour{}, "not a Prometheus API answer"},
		{"unknown version", `{"status":"success","data":{"version":"main"}}`, ``, 404, Flavour{}, `prometheus version "main"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := serve(tc.build, tc.flags, tc.flagsStatus)
			got, err := UpstreamFlavour(context.Background(), s.Client(), s.URL)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("UpstreamFlavour = %+v, %v; want error %q", got, err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("UpstreamFlavour = %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
	if _, err := UpstreamFlavour(context.Background(), http.DefaultClient, "ftp://x"); err == nil {
		t.Error("UpstreamFlavour accepted an ftp URL")
	}
}

// FuzzParseFlavour feeds ParseFlavour what an upstream's buildinfo and flags
// may answer: it never panics, and accepts only 2.x and 3.x, with the
// experimental functions only on 3.x.
func FuzzParseFlavour(f *testing.F) {
	for _, s := range [][2]string{
		{"2.42.0+ds", ""},
		{"v3.5.0", FeatureExperimental},
		{"3.0.0-rc.1", "exemplar-storage," + FeatureExperimental},
		{" 2 ", ","},
		{"", ""},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, version, features string) {
		got, err := ParseFlavour(version, features)
		if err != nil {
			if got != (Flavour{}) {
				t.Fatalf("ParseFlavour(%q, %q) = %+v with error %v", version, features, got, err)
			}
			return
		}
		if got.Major != 2 && got.Major != 3 || got.Experimental && got.Major != 3 {
			t.Fatalf("ParseFlavour(%q, %q) = %+v", version, features, got)
		}
		if again, _ := ParseFlavour(version, features); again != got {
			t.Fatalf("ParseFlavour is not deterministic: %+v then %+v", got, again)
		}
	})
}
