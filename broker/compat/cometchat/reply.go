package cometchat

import (
	"encoding/json"
	"net/http"
)

// Error codes of CometChat's error envelope.
const (
	codeBadRequest     = "ERR_BAD_REQUEST"
	codeGUIDNotFound   = "ERR_GUID_NOT_FOUND"
	codeNotFound       = "ERR_NOT_FOUND"
	codeMethod         = "ERR_METHOD_NOT_ALLOWED"
	codeInternal       = "ERR_INTERNAL_SERVER_ERROR"
	codeEmptyAppID     = "AUTH_ERR_EMPTY_APPID"
	codeInvalidAppID   = "AUTH_ERR_INVALID_APPID"
	codeEmptyAPIKey    = "AUTH_ERR_EMPTY_APIKEY"
	codeAPIKeyNotFound = "AUTH_ERR_APIKEY_NOT_FOUND"
	codeNoAccess       = "AUTH_ERR_NO_ACCESS"
)

// errorBody is CometChat's error envelope.
type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Message    string              `json:"message"`
	DevMessage string              `json:"devMessage"`
	Source     string              `json:"source"`
	Code       string              `json:"code"`
	Details    map[string][]string `json:"details,omitempty"`
}

type apiError struct {
	status int
	body   errorBody
}

func newError(status int, code, message, devMessage string) *apiError {
	return &apiError{status, errorBody{errorDetail{Message: message, DevMessage: devMessage, Source: "chat-api", Code: code}}}
}

// badRequest is the Laravel-style validation failure, details keyed by
// parameter.
func badRequest(details map[string][]string) *apiError {
	const msg = "Failed to validate the data sent with the request."
	e := newError(http.StatusBadRequest, codeBadRequest, msg, msg)
	e.body.Error.Details = details
	return e
}

func writeJSON(w http.ResponseWriter, status int, body any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body) // the client may be gone; nothing to do
}

// codeUnavailable is the code of WriteUnavailable's answer.
const codeUnavailable = "ERR_SERVICE_UNAVAILABLE"

// WriteUnavailable answers that presence cannot be served right now (the
// node lost its store), in CometChat's error envelope with 503 and
// Retry-After.
func WriteUnavailable(w http.ResponseWriter, why string) {
	e := newError(http.StatusServiceUnavailable, codeUnavailable, "The service is temporarily unavailable.", why)
	w.Header().Set("Retry-After", "5")
	writeJSON(w, e.status, e.body)
}
