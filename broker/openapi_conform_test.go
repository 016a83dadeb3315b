package broker_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"
	"github.com/presenced/presenced/broker/openapi"
)

// Every request the tests of this package make through http.DefaultClient
// (call, and the tests that use the client directly) goes through
// conformingTransport: an answer of a route that broker/openapi/openapi.json
// describes must match the document, status and headers and body, or the
// request fails with an error that says why, and so does the test.
func init() {
	http.DefaultClient.Transport = conformingTransport{next: http.DefaultTransport}
}

// loadDocument loads and validates the embedded document once.
var loadDocument = sync.OnceValues(func() (*openapi3.T, error) {
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(openapi.JSON())
	if err != nil {
		return nil, fmt.Errorf("broker/openapi/openapi.json does not load: %w", err)
	}
	if err := doc.Validate(loader.Context); err != nil {
		return nil, fmt.Errorf("broker/openapi/openapi.json is not a valid OpenAPI document: %w", err)
	}
	return doc, nil
})

var loadRouter = sync.OnceValues(func() (routers.Router, error) {
	doc, err := loadDocument()
	if err != nil {
		return nil, err
	}
	return legacy.NewRouter(doc)
})

// conformingTransport checks the answers of documented routes against the
// document. A request whose route the document lacks passes unchecked: the
// vendors' APIs, the WebSocket, and the native routes the document misses,
// which TestOpenAPIRoutes reports.
type conformingTransport struct{ next http.RoundTripper }

func (c conformingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	router, err := loadRouter()
	if err != nil {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, err
	}
	route, params, err := router.FindRoute(req)
	if err != nil {
		return c.next.RoundTrip(req)
	}
	var reqBody []byte
	if req.Body != nil && req.Body != http.NoBody {
		reqBody, err = io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return nil, err
		}
		req = req.Clone(req.Context())
		req.Body = io.NopCloser(bytes.NewReader(reqBody))
	}
	resp, err := c.next.RoundTrip(req)
	if err != nil || resp.StatusCode == http.StatusSwitchingProtocols {
		return resp, err // an upgraded connection's body is the connection
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	if err := conform(req, reqBody, route, params, resp, body); err != nil {
		return nil, fmt.Errorf("broker/openapi/openapi.json, %s %s: %w", route.Method, route.Path, err)
	}
	return resp, nil
}

// conform validates the answer and, when the server accepted the request,
// the request too: what the server takes, the document must allow.
func conform(req *http.Request, reqBody []byte, route *routers.Route, params map[string]string, resp *http.Response, body []byte) error {
	ctx := context.Background()
	opts := &openapi3filter.Options{
		AuthenticationFunc:    openapi3filter.NoopAuthenticationFunc,
		IncludeResponseStatus: true,
		MultiError:            true,
	}
	in := &openapi3filter.RequestValidationInput{
		Request: requestCopy(req, reqBody, route), PathParams: params, Route: route, Options: opts,
	}
	out := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in, Status: resp.StatusCode, Header: resp.Header, Options: opts,
	}
	out.SetBodyBytes(body)
	if err := openapi3filter.ValidateResponse(ctx, out); err != nil {
		return fmt.Errorf("answer %d %.300q does not match: %w", resp.StatusCode, body, err)
	}
	if resp.StatusCode/100 == 2 {
		if err := openapi3filter.ValidateRequest(ctx, in); err != nil {
			return fmt.Errorf("the server accepted (%d) a request the document rejects: %w", resp.StatusCode, err)
		}
	}
	return nil
}

// requestCopy is req with its body, for validation. The server reads every
// body by the route's one media type whatever Content-Type says, as the
// tests' requests, which send none, rely on: the copy says it.
func requestCopy(req *http.Request, body []byte, route *routers.Route) *http.Request {
	r := req.Clone(context.Background())
	r.Body = io.NopCloser(bytes.NewReader(body))
	if rb := route.Operation.RequestBody; len(body) > 0 && r.Header.Get("Content-Type") == "" && rb != nil && len(rb.Value.Content) == 1 {
		for mt := range rb.Value.Content {
			r.Header.Set("Content-Type", mt)
		}
	}
	return r
}
