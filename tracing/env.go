package tracing

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/promgate/promgate/config"
)

// defaultEndpoint is the OTLP/HTTP default of the specification.
const defaultEndpoint = "http://localhost:4318/v1/traces"

// defaultTimeout bounds one export, retries included.
const defaultTimeout = 10 * time.Second

// exportConfig is everything the exporter needs, from the configuration
// file and the OTEL_EXPORTER_OTLP_* variables.
type exportConfig struct {
	// endpoint is the whole URL spans are POSTed to.
	endpoint string
	// headers are sent with every export. Their values are secrets.
	headers http.Header
	timeout time.Duration
	gzip    bool
	// tls is the client configuration of an https endpoint, or nil.
	tls *tls.Config
}

// lookup returns the value of the traces-specific variable
// OTEL_EXPORTER_OTLP_TRACES_<name>, else of OTEL_EXPORTER_OTLP_<name>, and
// the name of the one it read.
func lookup(getenv func(string) string, name string) (value, from string) {
	for _, k := range []string{"OTEL_EXPORTER_OTLP_TRACES_" + name, "OTEL_EXPORTER_OTLP_" + name} {
		if v := strings.TrimSpace(getenv(k)); v != "" {
			return v, k
		}
	}
	return "", ""
}

// exportConfigOf resolves the exporter's configuration. Errors name the key
// or variable at fault, never a header value or a URL's credentials.
func exportConfigOf(cfg config.Tracing, getenv func(string) string) (exportConfig, error) {
	ec := exportConfig{headers: http.Header{}, timeout: defaultTimeout}
	var errs []error

	switch {
	case cfg.Endpoint != "":
		ec.endpoint = withTracesPath(cfg.Endpoint)
	case getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != "":
		// The signal's own variable is the whole URL, as it is.
		ec.endpoint = strings.TrimSpace(getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
		if msg := checkEndpoint(ec.endpoint); msg != "" {
			errs = append(errs, fmt.Errorf("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: %s", msg))
		}
	case getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "":
		// The shared variable is a base URL the signal's path is added to.
		base := strings.TrimSpace(getenv("OTEL_EXPORTER_OTLP_ENDPOINT"))
		if msg := checkEndpoint(base); msg != "" {
			errs = append(errs, fmt.Errorf("OTEL_EXPORTER_OTLP_ENDPOINT: %s", msg))
		} else {
			u, _ := url.Parse(base) // checked above
			u.Path = strings.TrimSuffix(u.Path, "/") + "/v1/traces"
			ec.endpoint = u.String()
		}
	default:
		ec.endpoint = defaultEndpoint
	}

	if cfg.HeadersFile != "" {
		if err := readHeadersFile(cfg.HeadersFile, ec.headers); err != nil {
			errs = append(errs, err)
		}
	}
	// The shared variable first, so that the signal's own overrides it.
	for _, k := range []string{"OTEL_EXPORTER_OTLP_HEADERS", "OTEL_EXPORTER_OTLP_TRACES_HEADERS"} {
		if v := getenv(k); v != "" {
			if err := parseEnvHeaders(v, ec.headers); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", k, err))
			}
		}
	}

	if v, from := lookup(getenv, "TIMEOUT"); v != "" {
		ms, err := strconv.ParseInt(v, 10, 64)
		if err != nil || ms <= 0 || ms > int64(time.Hour/time.Millisecond) {
			errs = append(errs, fmt.Errorf("%s: %q is not a timeout in milliseconds (1 to 3600000)", from, v))
		} else {
			ec.timeout = time.Duration(ms) * time.Millisecond
		}
	}
	if v, from := lookup(getenv, "COMPRESSION"); v != "" {
		switch v {
		case "gzip":
			ec.gzip = true
		case "none":
		default:
			errs = append(errs, fmt.Errorf("%s: %q is not gzip or none", from, v))
		}
	}

	if strings.HasPrefix(ec.endpoint, "https:") {
		tc, err := tlsConfigOf(getenv)
		if err != nil {
			errs = append(errs, err)
		}
		ec.tls = tc
	}
	return ec, errors.Join(errs...)
}

// withTracesPath completes a configured endpoint: one without a path gets
// /v1/traces.
func withTracesPath(endpoint string) string {
	u, err := url.Parse(endpoint)
	if err != nil || (u.Path != "" && u.Path != "/") {
		return endpoint
	}
	u.Path = "/v1/traces"
	return u.String()
}

// checkEndpoint returns why an endpoint from the environment cannot be
// used, or "". Like tracing.endpoint, it must not carry credentials; the
// value is not repeated, in case it does.
func checkEndpoint(s string) string {
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return "not a URL"
	case u.User != nil:
		return "must not carry credentials; use OTEL_EXPORTER_OTLP_HEADERS"
	case (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		return "not an http or https URL such as http://otel-collector:4318"
	case u.RawQuery != "" || u.Fragment != "" || u.ForceQuery:
		return "must not carry a query or fragment"
	}
	return ""
}

// headerNameRE is the token alphabet of RFC 9110 field names.
var headerNameRE = regexp.MustCompile("^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")

// reservedHeaders are set by the exporter itself.
var reservedHeaders = []string{"Content-Type", "Content-Encoding", "Content-Length", "Host", "Transfer-Encoding", "Connection", "Te", "Upgrade", "Trailer"}

// addHeader checks one header and sets it on h. Its errors name the header,
// never the value.
func addHeader(h http.Header, name, value string) error {
	if !headerNameRE.MatchString(name) {
		return errors.New("a header name is not an HTTP token")
	}
	for _, r := range reservedHeaders {
		if strings.EqualFold(name, r) {
			return fmt.Errorf("header %s is set by the exporter", http.CanonicalHeaderKey(name))
		}
	}
	if strings.ContainsAny(value, "\r\n\x00") {
		return fmt.Errorf("the value of header %s holds a line break or NUL", http.CanonicalHeaderKey(name))
	}
	h.Set(name, value)
	return nil
}

// parseEnvHeaders reads OTEL_EXPORTER_OTLP_HEADERS: name=value pairs
// separated by commas, the values percent-encoded.
func parseEnvHeaders(s string, h http.Header) error {
	var errs []error
	for i, pair := range strings.Split(s, ",") {
		if strings.TrimSpace(pair) == "" {
			continue
		}
		name, raw, ok := strings.Cut(pair, "=")
		name = strings.TrimSpace(name)
		if !ok || name == "" {
			errs = append(errs, fmt.Errorf("entry %d is not name=value", i+1))
			continue
		}
		value, err := url.PathUnescape(strings.TrimSpace(raw))
		if err != nil {
			errs = append(errs, fmt.Errorf("the value of header %s is not percent-encoded", http.CanonicalHeaderKey(name)))
			continue
		}
		if err := addHeader(h, name, value); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// maxHeadersFile bounds tracing.headers_file.
const maxHeadersFile = 64 << 10

// readHeadersFile reads tracing.headers_file: one "Name: value" a line;
// empty lines and lines starting with # are skipped.
func readHeadersFile(path string, h http.Header) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("tracing.headers_file: %w", err)
	}
	if len(b) > maxHeadersFile {
		return fmt.Errorf("tracing.headers_file: larger than %d bytes", maxHeadersFile)
	}
	var errs []error
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, value, ok := strings.Cut(line, ":")
		if !ok || strings.TrimSpace(name) == "" {
			errs = append(errs, fmt.Errorf("tracing.headers_file: line %d is not Name: value", n))
			continue
		}
		if err := addHeader(h, strings.TrimSpace(name), strings.TrimSpace(value)); err != nil {
			errs = append(errs, fmt.Errorf("tracing.headers_file: line %d: %w", n, err))
		}
	}
	return errors.Join(errs...)
}

// tlsConfigOf builds the client TLS configuration of an https endpoint from
// OTEL_EXPORTER_OTLP_[TRACES_]CERTIFICATE (the CAs; the system's when
// unset), _CLIENT_CERTIFICATE and _CLIENT_KEY.
func tlsConfigOf(getenv func(string) string) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	var errs []error
	if path, from := lookup(getenv, "CERTIFICATE"); path != "" {
		b, err := os.ReadFile(path)
		pool := x509.NewCertPool()
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("%s: %w", from, err))
		case !pool.AppendCertsFromPEM(b):
			errs = append(errs, fmt.Errorf("%s: %s holds no PEM certificate", from, path))
		default:
			tc.RootCAs = pool
		}
	}
	certFile, certFrom := lookup(getenv, "CLIENT_CERTIFICATE")
	keyFile, keyFrom := lookup(getenv, "CLIENT_KEY")
	switch {
	case certFile != "" && keyFile != "":
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			// The error of LoadX509KeyPair never quotes the key.
			errs = append(errs, fmt.Errorf("%s and %s: %w", certFrom, keyFrom, err))
		} else {
			tc.Certificates = []tls.Certificate{cert}
		}
	case certFile != "" || keyFile != "":
		errs = append(errs, errors.New("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE and OTEL_EXPORTER_OTLP_CLIENT_KEY go together"))
	}
	return tc, errors.Join(errs...)
}
