package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/catalog-pipeline/pipeline/engine"
)

// Error names of Backstage's @backstage/errors package that the API
// answers with; statusOf maps them to HTTP statuses.
const (
	InputErrorName              = "InputError"
	AuthenticationErrorName     = "AuthenticationError"
	NotAllowedErrorName         = "NotAllowedError"
	NotFoundErrorName           = "NotFoundError"
	ConflictErrorName           = "ConflictError"
	NotImplementedErrorName     = "NotImplementedError"
	ServiceUnavailableErrorName = "ServiceUnavailableError"
	// PayloadTooLargeErrorName is what Express's body parser names a body
	// over the limit; Backstage answers it with 413.
	PayloadTooLargeErrorName = "PayloadTooLargeError"
	// MethodNotAllowedErrorName answers a known path called with a method
	// it does not serve (405).
	MethodNotAllowedErrorName = "MethodNotAllowedError"
)

// Error is an API error: a Backstage error name and a message. Status, when
// set, overrides the status the name maps to (as Backstage honours an
// explicit status on an error).
type Error struct {
	Name    string
	Message string
	Status  int
}

// Error returns the message.
func (e *Error) Error() string { return e.Message }

func apiErr(name, format string, args ...any) *Error {
	return &Error{Name: name, Message: fmt.Sprintf(format, args...)}
}

func inputErr(format string, args ...any) *Error { return apiErr(InputErrorName, format, args...) }

func notFoundErr(format string, args ...any) *Error {
	return apiErr(NotFoundErrorName, format, args...)
}

// statusOf maps a Backstage error name to its HTTP status, as the
// backend's error middleware does.
func statusOf(name string) int {
	switch name {
	case "NotModifiedError":
		return http.StatusNotModified
	case InputErrorName:
		return http.StatusBadRequest
	case AuthenticationErrorName:
		return http.StatusUnauthorized
	case NotAllowedErrorName:
		return http.StatusForbidden
	case NotFoundErrorName:
		return http.StatusNotFound
	case ConflictErrorName:
		return http.StatusConflict
	case PayloadTooLargeErrorName:
		return http.StatusRequestEntityTooLarge
	case MethodNotAllowedErrorName:
		return http.StatusMethodNotAllowed
	case NotImplementedErrorName:
		return http.StatusNotImplemented
	case ServiceUnavailableErrorName:
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// asAPIError turns any error into a name, message and status: *Error and
// the engine's *engine.ProcessingError keep their names; anything else is
// a 500 named "Error".
func asAPIError(err error) *Error {
	var ae *Error
	if errors.As(err, &ae) {
		out := *ae
		if out.Status == 0 {
			out.Status = statusOf(out.Name)
		}
		return &out
	}
	var pe *engine.ProcessingError
	if errors.As(err, &pe) {
		name := pe.Name
		if name == "" {
			name = engine.GeneralErrorName
		}
		return &Error{Name: name, Message: pe.Message, Status: statusOf(name)}
	}
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return &Error{Name: PayloadTooLargeErrorName, Message: fmt.Sprintf("request body is larger than the limit of %d bytes", mbe.Limit), Status: http.StatusRequestEntityTooLarge}
	}
	return &Error{Name: "Error", Message: err.Error(), Status: http.StatusInternalServerError}
}

// errorBody is Backstage's error response document.
type errorBody struct {
	Error    errorDetail  `json:"error"`
	Request  errorRequest `json:"request"`
	Response errorStatus  `json:"response"`
}

type errorDetail struct {
	Name    string `json:"name"`
	Message string `json:"message"`
}

type errorRequest struct {
	Method string `json:"method"`
	URL    string `json:"url"`
}

type errorStatus struct {
	StatusCode int `json:"statusCode"`
}

// writeError answers err in Backstage's error shape:
// {"error":{"name","message"},"request":{"method","url"},"response":{"statusCode"}}.
// Server errors (5xx other than 501/503) are logged.
func writeError(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	ae := asAPIError(err)
	if ae.Status >= 500 && ae.Status != http.StatusNotImplemented && ae.Status != http.StatusServiceUnavailable && log != nil {
		log.Error("request failed", "method", r.Method, "url", r.URL.RequestURI(), "error", err)
	}
	body, _ := json.Marshal(errorBody{
		Error:    errorDetail{Name: ae.Name, Message: ae.Message},
		Request:  errorRequest{Method: r.Method, URL: r.URL.RequestURI()},
		Response: errorStatus{StatusCode: ae.Status},
	})
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Del("Content-Length")
	w.WriteHeader(ae.Status)
	_, _ = w.Write(body)
}
