package bitrix24

import (
	"encoding/json"
	"net/http"
	"time"
)

// errorBody is every Bitrix24 error.
type errorBody struct {
	Error       string `json:"error"`
	Description string `json:"error_description"`
}

type apiError struct {
	status int
	body   errorBody
}

// System errors (Bitrix24's system-errors page).
var (
	errNoAuth            = &apiError{http.StatusUnauthorized, errorBody{"NO_AUTH_FOUND", "Wrong authorization data"}}
	errInvalidCredential = &apiError{http.StatusUnauthorized, errorBody{"INVALID_CREDENTIALS", "Invalid request credentials"}}
	errExpiredToken      = &apiError{http.StatusUnauthorized, errorBody{"expired_token", "The access token provided has expired"}}
	errInvalidToken      = &apiError{http.StatusUnauthorized, errorBody{"invalid_token", "The access token provided is invalid"}}
	errScope             = &apiError{http.StatusUnauthorized, errorBody{"insufficient_scope", "The request requires higher privileges than provided by the access token"}}
	errMethodNotFound    = &apiError{http.StatusNotFound, errorBody{"ERROR_METHOD_NOT_FOUND", "Method not found!"}}
	errInternal          = &apiError{http.StatusInternalServerError, errorBody{"INTERNAL_SERVER_ERROR", "Internal server error"}}
)

// methodError is a RestException thrown by a method: current cores send an
// empty code, as the vendor page shows.
func methodError(description string) *apiError {
	return &apiError{http.StatusBadRequest, errorBody{"", description}}
}

// timing is the time object of every successful answer; b24jssdk reads
// time.operating and fails without it.
type timing struct {
	Start            float64 `json:"start"`
	Finish           float64 `json:"finish"`
	Duration         float64 `json:"duration"`
	Processing       float64 `json:"processing"`
	DateStart        string  `json:"date_start"`
	DateFinish       string  `json:"date_finish"`
	OperatingResetAt int64   `json:"operating_reset_at"`
	Operating        float64 `json:"operating"`
}

// operatingWindow is how often Bitrix24 resets its per-method time budget.
const operatingWindow = 10 * time.Minute

func newTiming(start, methodStart, finish time.Time) timing {
	secs := func(t time.Time) float64 { return float64(t.UnixMicro()) / 1e6 }
	const layout = "2006-01-02T15:04:05-07:00"
	return timing{
		Start:            secs(start),
		Finish:           secs(finish),
		Duration:         finish.Sub(start).Seconds(),
		Processing:       finish.Sub(methodStart).Seconds(),
		DateStart:        start.Format(layout),
		DateFinish:       finish.Format(layout),
		OperatingResetAt: start.Add(operatingWindow).Unix(),
	}
}

func writeJSON(w http.ResponseWriter, status int, body any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body) // the client may be gone; nothing to do
}

// WriteUnavailable answers that presence cannot be served right now (the
// node lost its store) with 503 and Retry-After: Bitrix24 clients retry a
// 503 with backoff.
func WriteUnavailable(w http.ResponseWriter, why string) {
	w.Header().Set("Retry-After", "5")
	writeJSON(w, http.StatusServiceUnavailable, errorBody{"SERVICE_UNAVAILABLE", "Service temporarily unavailable: " + why})
}
