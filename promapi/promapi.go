package promapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
)

// ErrorType is the errorType of Prometheus' API envelope.
type ErrorType string

// Error types, as Prometheus names them, plus the gateway's own.
const (
	ErrBadData         ErrorType = "bad_data"
	ErrUnauthorized    ErrorType = "unauthorized"
	ErrForbidden       ErrorType = "forbidden"
	ErrNotFound        ErrorType = "not_found"
	ErrTooManyRequests ErrorType = "too_many_requests"
	ErrInternal        ErrorType = "internal"
	ErrUnavailable     ErrorType = "unavailable"
	ErrTimeout         ErrorType = "timeout"
)

// Error is the one error type of the request path.
type Error struct {
	// Type is the errorType in the envelope.
	Type ErrorType
	// Status is the HTTP status; zero means the default for Type.
	Status int
	// Msg is shown to the client. It must be safe to show.
	Msg string
	// Err is the internal cause, for logs and the audit record only.
	Err error
}

// Error returns the client message and the cause.
func (e *Error) Error() string {
	if e.Err != nil {
		return e.Msg + ": " + e.Err.Error()
	}
	return e.Msg
}

// Unwrap returns the internal cause.
func (e *Error) Unwrap() error { return e.Err }

// Code returns the HTTP status of e.
func (e *Error) Code() int {
	if e.Status != 0 {
		return e.Status
	}
	switch e.Type {
	case ErrBadData:
		return http.StatusBadRequest
	case ErrUnauthorized:
		return http.StatusUnauthorized
	case ErrForbidden:
		return http.StatusForbidden
	case ErrNotFound:
		return http.StatusNotFound
	case ErrTooManyRequests:
		return http.StatusTooManyRequests
	case ErrUnavailable:
		return http.StatusBadGateway
	case ErrTimeout:
		return http.StatusGatewayTimeout
	default:
		return http.StatusInternalServerError
	}
}

// Errorf returns an Error of type t whose client message is formatted.
func Errorf(t ErrorType, format string, args ...any) *Error {
	return &Error{Type: t, Msg: fmt.Sprintf(format, args...)}
}

// Wrap returns an Error of type t with a client message and an internal cause.
func Wrap(t ErrorType, msg string, err error) *Error {
	return &Error{Type: t, Msg: msg, Err: err}
}

// As returns err as an *Error. Any other error becomes an internal error whose
// client message carries only the request ID.
func As(err error, requestID string) *Error {
	if e, ok := errors.AsType[*Error](err); ok {
		return e
	}
	return &Error{Type: ErrInternal, Msg: "internal error (request id " + requestID + ")", Err: err}
}

type envelope struct {
	Status    string    `json:"status"`
	ErrorType ErrorType `json:"errorType,omitempty"`
	Error     string    `json:"error,omitempty"`
	Data      any       `json:"data,omitempty"`
}

// WriteError writes e in Prometheus' error envelope. A 401 carries
// WWW-Authenticate: Bearer.
func WriteError(w http.ResponseWriter, e *Error) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	if e.Code() == http.StatusUnauthorized {
		h.Set("WWW-Authenticate", `Bearer realm="promgate"`)
	}
	w.WriteHeader(e.Code())
	b, _ := json.Marshal(envelope{Status: "error", ErrorType: e.Type, Error: e.Msg})
	_, _ = w.Write(append(b, '\n'))
}

// WriteData writes a success envelope holding data.
func WriteData(w http.ResponseWriter, data any) error {
	b, err := json.Marshal(envelope{Status: "success", Data: data})
	if err != nil {
		return err
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	_, err = w.Write(append(b, '\n'))
	return err
}
