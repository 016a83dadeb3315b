package rocketchat

import (
	"encoding/json"
	"net/http"
)

// Error texts that clients and upstream end-to-end tests compare verbatim.
const (
	msgLoggedIn     = "You must be logged in to do this."
	msgNoPermission = "User does not have the permissions required for this action [error-unauthorized]"
	msgNotFound     = "Resource not found"
	msgInternal     = "Internal server error"
	codeBadParams   = "error-invalid-params"
	codeNotAllowed  = "error-not-allowed"
)

// errorBody is every Rocket.Chat failure shape: rest-typings' error
// validators allow exactly these keys and no others.
type errorBody struct {
	Success   bool   `json:"success"`
	Error     string `json:"error"`
	ErrorType string `json:"errorType,omitempty"`
	Status    string `json:"status,omitempty"`
	Message   string `json:"message,omitempty"`
}

// apiError is a failure answer: an HTTP status and a body.
type apiError struct {
	status int
	body   errorBody
}

// failure is API.v1.failure(text): 400 without an error type.
func failure(text string) *apiError {
	return &apiError{http.StatusBadRequest, errorBody{Error: text}}
}

// coded is a thrown Meteor.Error(code, reason) as API.v1.failure renders it:
// 400, "reason [code]" (or "[code]" without a reason) and errorType.
func coded(reason, code string) *apiError {
	text := "[" + code + "]"
	if reason != "" {
		text = reason + " " + text
	}
	return &apiError{http.StatusBadRequest, errorBody{Error: text, ErrorType: code}}
}

// invalidParams is the schema validation failure of typed routes; message is
// Ajv's first error message.
func invalidParams(message string) *apiError {
	return &apiError{http.StatusBadRequest, errorBody{Error: message, ErrorType: codeBadParams}}
}

// notLoggedIn is the 401 of routes with authRequired, with the legacy
// status/message pair upstream keeps until its 9.0 break.
func notLoggedIn() *apiError {
	return &apiError{http.StatusUnauthorized, errorBody{Error: msgLoggedIn, Status: "error", Message: msgLoggedIn}}
}

// unauthorized is API.v1.unauthorized() without a message.
func unauthorized() *apiError {
	return &apiError{http.StatusUnauthorized, errorBody{Error: "unauthorized"}}
}

// noPermission is the 403 of a route whose permissionsRequired the caller
// lacks.
func noPermission() *apiError {
	return &apiError{http.StatusForbidden, errorBody{Error: msgNoPermission}}
}

func notFound() *apiError {
	return &apiError{http.StatusNotFound, errorBody{Error: msgNotFound}}
}

func internalError() *apiError {
	return &apiError{http.StatusInternalServerError, errorBody{Error: msgInternal}}
}

func tooManyRequests(text string) *apiError {
	return &apiError{http.StatusTooManyRequests, errorBody{Error: text}}
}

// writeJSON sends body with the headers upstream's router puts on every API
// answer.
func writeJSON(w http.ResponseWriter, status int, body any) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body) // the client may be gone; nothing to do
}

func writeError(w http.ResponseWriter, e *apiError) { writeJSON(w, e.status, e.body) }

// WriteUnavailable answers that presence cannot be served right now (the
// node lost its store), in Rocket.Chat's plain failure shape with 503 and
// Retry-After, so that clients retry, on another node if there is one.
func WriteUnavailable(w http.ResponseWriter, why string) {
	w.Header().Set("Retry-After", "5")
	writeJSON(w, http.StatusServiceUnavailable, errorBody{Error: "Service unavailable: " + why})
}
