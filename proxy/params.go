package proxy

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/prometheus/common/model"

	"github.com/promgate/promgate/config"
	"github.com/promgate/promgate/promapi"
)

// Size caps, checked before any parsing.
const (
	// maxParamBytes bounds one parameter value, such as a query.
	maxParamBytes = 32 << 10
	// maxURIBytes bounds the request target (414).
	maxURIBytes = 48 << 10
	// maxParams bounds the number of parameters in the URL and body together.
	maxParams = 1000
)

// methodOverrides are headers some frameworks read to change the method. The
// gateway does not honour them and refuses requests that carry them, so that
// no component behind it can be tricked into another method.
var methodOverrides = []string{"X-HTTP-Method-Override", "X-HTTP-Method", "X-Method-Override"}

// parseParams reads a request's parameters from the URL and, for POST, from
// a form body, and returns the ones the route forwards to an upstream of the
// given flavor, and the names of the others, sorted, which are dropped: the
// upstream request is rebuilt from the returned values only, as Prometheus
// itself ignores parameters it does not know. It refuses what could be read
// two ways: a parameter in both the URL and the body (Prometheus reads the
// body first), a repeated single-valued parameter, a body on GET, and body
// encodings it does not parse; and a Thanos parameter whose value is not
// one Thanos accepts.
func parseParams(r *http.Request, rt *route, flavor string, maxBody int64) (url.Values, []string, error) {
	out, dropped, err := readParams(r, rt, flavor, maxBody)
	if err != nil {
		return nil, nil, err
	}
	if flavor == config.FlavorThanos {
		if err := checkThanos(out); err != nil {
			return nil, nil, err
		}
	}
	return out, dropped, nil
}

func readParams(r *http.Request, rt *route, flavor string, maxBody int64) (url.Values, []string, error) {
	for _, h := range methodOverrides {
		if _, ok := r.Header[http.CanonicalHeaderKey(h)]; ok {
			return nil, nil, promapi.Errorf(promapi.ErrBadData, "method override header %s is not accepted", h)
		}
	}
	if len(r.RequestURI) > maxURIBytes || len(r.URL.RawQuery) > maxURIBytes {
		return nil, nil, &promapi.Error{Type: promapi.ErrBadData, Status: http.StatusRequestURITooLong,
			Msg: fmt.Sprintf("request URI is longer than %d bytes; send the parameters as a POST form", maxURIBytes)}
	}
	if strings.Count(r.URL.RawQuery, "&") >= maxParams {
		return nil, nil, tooManyParams()
	}
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, nil, promapi.Wrap(promapi.ErrBadData, "invalid URL query string", err)
	}
	var body url.Values
	switch r.Method {
	case http.MethodPost:
		if body, err = parseForm(r, maxBody); err != nil {
			return nil, nil, err
		}
	default:
		if r.ContentLength > 0 || len(r.TransferEncoding) > 0 {
			return nil, nil, promapi.Errorf(promapi.ErrBadData, "a %s request must not have a body", r.Method)
		}
	}
	for k := range body {
		if _, ok := q[k]; ok {
			return nil, nil, promapi.Errorf(promapi.ErrBadData, "parameter %q is given in both the URL and the body; send it once", truncate(k, 64))
		}
	}
	out := make(url.Values, len(q)+len(body))
	var dropped []string
	for _, src := range []url.Values{q, body} {
		for k, vs := range src {
			if !rt.forwards(k, flavor) {
				if flavor == config.FlavorThanos && k == "storeMatch[]" {
					// Dropping it would widen the stores asked; forwarding
					// it would let the caller pick them. Neither is silent.
					return nil, nil, promapi.Errorf(promapi.ErrBadData, "parameter storeMatch[] is not accepted through the gateway; leave it out")
				}
				dropped = append(dropped, truncate(k, 64))
				continue
			}
			if len(vs) > 1 && !rt.repeats(k) {
				return nil, nil, promapi.Errorf(promapi.ErrBadData, "parameter %q is repeated; send it once", k)
			}
			for _, v := range vs {
				if len(v) > maxParamBytes {
					return nil, nil, &promapi.Error{Type: promapi.ErrBadData, Status: http.StatusRequestEntityTooLarge,
						Msg: fmt.Sprintf("parameter %q is longer than %d bytes", k, maxParamBytes)}
				}
			}
			out[k] = vs
		}
	}
	slices.Sort(dropped)
	return out, slices.Compact(dropped), nil
}

// thanosChecks check the values of the Thanos parameters the gateway
// forwards, so that nothing Thanos would read another way reaches it.
var thanosChecks = map[string]func(string) bool{
	"dedup":            isBool,
	"partial_response": isBool,
	"analyze":          isBool,
	"engine":           func(v string) bool { return v == "prometheus" || v == "thanos" },
	"replicaLabels[]":  func(v string) bool { return model.LegacyValidation.IsValidLabelName(v) },
	"max_source_resolution": func(v string) bool {
		if v == "auto" {
			return true
		}
		d, err := promapi.ParseDuration(v)
		return err == nil && d >= 0
	},
}

func isBool(v string) bool {
	_, err := strconv.ParseBool(v)
	return err == nil
}

// checkThanos refuses a Thanos parameter whose value Thanos would not accept.
func checkThanos(params url.Values) error {
	for k, vs := range params {
		check, ok := thanosChecks[k]
		if !ok {
			continue
		}
		for _, v := range vs {
			if !check(v) {
				return promapi.Errorf(promapi.ErrBadData, "invalid parameter %q: %q is not a value Thanos accepts", k, truncate(v, 64))
			}
		}
	}
	return nil
}

// parseForm reads an application/x-www-form-urlencoded body of at most
// maxBody bytes.
func parseForm(r *http.Request, maxBody int64) (url.Values, error) {
	if len(r.TransferEncoding) > 0 {
		// Content-Length together with Transfer-Encoding is the classic
		// smuggling framing, and net/http drops the Content-Length before a
		// handler can see both. Requests this gateway serves are small forms
		// that clients send with a length, so a chunked body is refused
		// outright (CVE-2025-22871 and its relatives).
		return nil, &promapi.Error{Type: promapi.ErrBadData, Status: http.StatusLengthRequired,
			Msg: "chunked request bodies are not accepted; send the form with Content-Length"}
	}
	if ce := r.Header.Values("Content-Encoding"); len(ce) > 0 && !(len(ce) == 1 && strings.EqualFold(ce[0], "identity")) {
		return nil, &promapi.Error{Type: promapi.ErrBadData, Status: http.StatusUnsupportedMediaType,
			Msg: "compressed request bodies are not accepted; send an uncompressed form"}
	}
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		if r.ContentLength == 0 {
			return nil, nil
		}
		return nil, &promapi.Error{Type: promapi.ErrBadData, Status: http.StatusUnsupportedMediaType,
			Msg: "a POST body needs Content-Type: application/x-www-form-urlencoded"}
	}
	if len(r.Header.Values("Content-Type")) > 1 {
		return nil, promapi.Errorf(promapi.ErrBadData, "Content-Type is repeated")
	}
	mt, ps, err := mime.ParseMediaType(ct)
	if err != nil || mt != "application/x-www-form-urlencoded" {
		return nil, &promapi.Error{Type: promapi.ErrBadData, Status: http.StatusUnsupportedMediaType,
			Msg: fmt.Sprintf("unsupported Content-Type %q; use application/x-www-form-urlencoded", truncate(ct, 64))}
	}
	for k, v := range ps {
		if k != "charset" || !strings.EqualFold(v, "utf-8") {
			return nil, &promapi.Error{Type: promapi.ErrBadData, Status: http.StatusUnsupportedMediaType,
				Msg: "unsupported Content-Type parameter; only charset=utf-8 is accepted"}
		}
	}
	b, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, maxBody))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return nil, &promapi.Error{Type: promapi.ErrBadData, Status: http.StatusRequestEntityTooLarge,
				Msg: fmt.Sprintf("request body is larger than %d bytes", maxBody)}
		}
		return nil, promapi.Wrap(promapi.ErrBadData, "cannot read request body", err)
	}
	if n := strings.Count(string(b), "&"); n >= maxParams {
		return nil, tooManyParams()
	}
	v, err := url.ParseQuery(string(b))
	if err != nil {
		return nil, promapi.Wrap(promapi.ErrBadData, "invalid form body", err)
	}
	return v, nil
}

func tooManyParams() error {
	return &promapi.Error{Type: promapi.ErrBadData, Status: http.StatusRequestEntityTooLarge,
		Msg: fmt.Sprintf("more than %d parameters", maxParams)}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
