package detect

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/model"
)

// maxResponse bounds an upstream answer to a detector query.
const maxResponse = 64 << 20

// HTTPQuerier queries the Prometheus HTTP API (POST /api/v1/query).
type HTTPQuerier struct {
	base   string
	client *http.Client
	header http.Header
}

var _ Querier = (*HTTPQuerier)(nil)

// NewHTTPQuerier returns a Querier for the Prometheus-compatible API at
// baseURL (e.g. http://prometheus:9090, or a path prefix). rt carries TLS and
// credentials (nil means http.DefaultTransport); header is added to every
// request, e.g. a tenant or an Authorization header.
func NewHTTPQuerier(baseURL string, rt http.RoundTripper, header http.Header) *HTTPQuerier {
	if rt == nil {
		rt = http.DefaultTransport
	}
	return &HTTPQuerier{
		base:   strings.TrimSuffix(baseURL, "/"),
		client: &http.Client{Transport: rt, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
		header: header.Clone(),
	}
}

// Query runs query at ts and decodes the vector it returns. A result of
// another type is an error.
func (h *HTTPQuerier) Query(ctx context.Context, query string, ts time.Time) (model.Vector, error) {
	form := url.Values{
		"query": {query},
		"time":  {strconv.FormatFloat(float64(ts.UnixMilli())/1000, 'f', 3, 64)},
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.base+"/api/v1/query", strings.NewReader(form.Encode()))
	if err != nil {
		return nil, fmt.Errorf("build query request: %w", err)
	}
	for k, vs := range h.header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	resp, err := h.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("query upstream: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse+1))
	if err != nil {
		return nil, fmt.Errorf("read upstream answer: %w", err)
	}
	if len(body) > maxResponse {
		return nil, fmt.Errorf("upstream answer larger than %d bytes", maxResponse)
	}
	var env struct {
		Status    string `json:"status"`
		ErrorType string `json:"errorType"`
		Error     string `json:"error"`
		Data      struct {
			ResultType string          `json:"resultType"`
			Result     json.RawMessage `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &env); err != nil {
		return nil, fmt.Errorf("upstream answered status %d without a Prometheus API envelope", resp.StatusCode)
	}
	if env.Status != "success" {
		if env.Error == "" {
			env.Error = "no error message"
		}
		return nil, fmt.Errorf("upstream answered status %d: %s: %s", resp.StatusCode, env.ErrorType, env.Error)
	}
	if env.Data.ResultType != "vector" {
		return nil, fmt.Errorf("upstream answered a %q result, want a vector", env.Data.ResultType)
	}
	var vec model.Vector
	if err := json.Unmarshal(env.Data.Result, &vec); err != nil {
		return nil, fmt.Errorf("decode upstream vector: %w", err)
	}
	if vec == nil {
		vec = model.Vector{}
	}
	return vec, nil
}
