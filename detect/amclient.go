package detect

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/promgate/promgate/config"
	"github.com/promgate/promgate/tlsutil"
)

// amClient returns the evaluator's client for detectors.alertmanager_url:
// it verifies the Alertmanager with detectors.alertmanager_tls.ca_file (or
// the system's CAs), presents the client certificate of
// detectors.alertmanager_tls when one is set, and sends the token of
// detectors.alertmanager_bearer_token_file, read at every push so that a
// rotated token is used at once. It follows no redirect. With the gateway's
// own URL the evaluator pushes through the gateway (route am_alert_push),
// authenticated by that certificate or token like any sender.
func amClient(cfg config.Detectors) (*http.Client, error) {
	t := &http.Transport{
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: 30 * time.Second,
		MaxIdleConnsPerHost:   2,
		ForceAttemptHTTP2:     true,
	}
	if strings.HasPrefix(cfg.AlertmanagerURL, "https:") {
		tc, err := tlsutil.UpstreamConfig(cfg.AlertmanagerTLS, nil)
		if err != nil {
			return nil, fmt.Errorf("detectors.alertmanager_tls: %w", err)
		}
		t.TLSClientConfig = tc
	}
	var rt http.RoundTripper = t
	if path := cfg.AlertmanagerBearerTokenFile; path != "" {
		if _, err := readToken(path); err != nil {
			return nil, err
		}
		rt = tokenTransport{base: t, path: path}
	}
	return &http.Client{Transport: rt, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}, nil
}

// tokenTransport sets Authorization: Bearer from a file read per request.
type tokenTransport struct {
	base http.RoundTripper
	path string
}

func (t tokenTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	token, err := readToken(t.path)
	if err != nil {
		return nil, err
	}
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+token)
	return t.base.RoundTrip(r)
}

// readToken reads a token file of one non-empty line.
func readToken(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("detectors.alertmanager_bearer_token_file: %w", err)
	}
	s := strings.TrimSpace(string(b))
	if s == "" || strings.ContainsAny(s, "\r\n") {
		return "", errors.New("detectors.alertmanager_bearer_token_file: must hold one non-empty line")
	}
	return s, nil
}
