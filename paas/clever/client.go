package clever

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-retryablehttp"
	"github.com/sirupsen/logrus"

	"gitlab.com/paas-runner/paas-runner/config"
)

// API is the api label this client passes to its Observer.
const API = "clever"

// Authorization schemes (config key cc_auth_scheme).
const (
	// SchemeToken sends "Authorization: token <cc_token>", the Heptapod
	// organisation-token scheme.
	SchemeToken = "token"
	// SchemeBearer sends "Authorization: Bearer <token>" (API tokens through
	// the API bridge, service tokens).
	SchemeBearer = "bearer"
)

// Defaults of Options.
const (
	DefaultTimeout       = 30 * time.Second
	DefaultRetryMax      = 4
	DefaultRetryWaitMin  = time.Second
	DefaultRetryWaitMax  = 30 * time.Second
	DefaultMaxRetryAfter = 60 * time.Second
	DefaultCatalogTTL    = time.Hour
	// maxBody bounds the size of a decoded response.
	maxBody = 16 << 20
)

// Observer is notified of every HTTP attempt, for metrics. api is always
// "clever"; endpoint is a bounded template such as
// "/organisations/:orga/applications/:app"; status is 0 on a network error.
type Observer func(api, endpoint string, status int, d time.Duration)

// Orga is one Clever organisation and the token that manages its
// applications. Token is a config.Secret and never printed.
type Orga struct {
	ID    string
	Token config.Secret
}

// Options tune a Client. Only BaseURL is required.
type Options struct {
	// BaseURL is cc_api_url, e.g. https://api.clever-cloud.com/v2.
	BaseURL string
	// AuthScheme is SchemeToken (default) or SchemeBearer.
	AuthScheme string
	// Timeout bounds one attempt (default 30s).
	Timeout time.Duration
	// RetryMax is the number of retries of transient failures (default 4;
	// negative means none).
	RetryMax int
	// RetryWaitMin and RetryWaitMax bound the exponential back-off (1s, 30s).
	RetryWaitMin, RetryWaitMax time.Duration
	// MaxRetryAfter caps a server's Retry-After (default 60s).
	MaxRetryAfter time.Duration
	// CatalogTTL is how long flavor lists and the instance type are cached
	// (default 1h).
	CatalogTTL time.Duration
	// Logger receives debug lines of every call (never a credential).
	Logger logrus.FieldLogger
	// Observer, when set, is called after every attempt.
	Observer Observer
	// Transport replaces the HTTP transport (tests).
	Transport http.RoundTripper
	// Now replaces time.Now for the caches (tests).
	Now func() time.Time
}

// Client talks to the Clever Cloud v2 API. It is safe for concurrent use.
type Client struct {
	base   string
	scheme string
	opts   Options
	log    logrus.FieldLogger
	http   *retryablehttp.Client

	mu sync.Mutex // guards the caches below
	// flavors caches flavor lists by context.
	flavors map[string]flavorEntry
	// instance caches the Docker instance type.
	instance *instanceEntry
}

// New returns a client of the API at opts.BaseURL.
func New(opts Options) (*Client, error) {
	if opts.BaseURL == "" {
		return nil, fmt.Errorf("new clever client: empty API URL")
	}
	scheme := strings.ToLower(opts.AuthScheme)
	switch scheme {
	case "":
		scheme = SchemeToken
	case SchemeToken, SchemeBearer:
	default:
		return nil, fmt.Errorf("new clever client: unknown auth scheme %q (want %q or %q)", opts.AuthScheme, SchemeToken, SchemeBearer)
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	switch {
	case opts.RetryMax == 0:
		opts.RetryMax = DefaultRetryMax
	case opts.RetryMax < 0:
		opts.RetryMax = 0
	}
	if opts.RetryWaitMin <= 0 {
		opts.RetryWaitMin = DefaultRetryWaitMin
	}
	if opts.RetryWaitMax <= 0 {
		opts.RetryWaitMax = DefaultRetryWaitMax
	}
	if opts.RetryWaitMax < opts.RetryWaitMin {
		opts.RetryWaitMax = opts.RetryWaitMin
	}
	if opts.MaxRetryAfter <= 0 {
		opts.MaxRetryAfter = DefaultMaxRetryAfter
	}
	if opts.CatalogTTL <= 0 {
		opts.CatalogTTL = DefaultCatalogTTL
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	log := opts.Logger
	if log == nil {
		l := logrus.New()
		l.SetOutput(io.Discard)
		log = l
	}
	base := opts.Transport
	if base == nil {
		base = http.DefaultTransport.(*http.Transport).Clone()
	}
	c := &Client{
		base:    strings.TrimRight(opts.BaseURL, "/"),
		scheme:  scheme,
		opts:    opts,
		log:     log.WithField("api", API),
		flavors: map[string]flavorEntry{},
	}
	c.http = &retryablehttp.Client{
		HTTPClient: &http.Client{
			Timeout:   opts.Timeout,
			Transport: &observingTransport{base: base, observer: opts.Observer},
		},
		RetryWaitMin: opts.RetryWaitMin,
		RetryWaitMax: opts.RetryWaitMax,
		RetryMax:     opts.RetryMax,
		CheckRetry:   checkRetry,
		Backoff: func(minWait, maxWait time.Duration, attempt int, resp *http.Response) time.Duration {
			return backoff(minWait, maxWait, opts.MaxRetryAfter, attempt, resp)
		},
		ErrorHandler: retryablehttp.PassthroughErrorHandler,
	}
	return c, nil
}

type ctxKey int

const (
	endpointKey ctxKey = iota
	noRetryKey
)

// checkRetry is the retry policy: network errors, 408, 429 and 5xx are
// retried; a non-idempotent request (noRetryKey) is retried only on 429,
// which means the server did not process it.
func checkRetry(ctx context.Context, resp *http.Response, err error) (bool, error) {
	if ctx.Err() != nil {
		return false, ctx.Err()
	}
	noRetry := ctx.Value(noRetryKey) != nil
	if err != nil {
		return !noRetry, nil
	}
	if resp.StatusCode == http.StatusTooManyRequests {
		return true, nil
	}
	if noRetry {
		return false, nil
	}
	return retryableStatus(resp.StatusCode), nil
}

// observingTransport reports each attempt to the Observer.
type observingTransport struct {
	base     http.RoundTripper
	observer Observer
}

func (t *observingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	start := time.Now()
	resp, err := t.base.RoundTrip(req)
	if t.observer != nil {
		endpoint, _ := req.Context().Value(endpointKey).(string)
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.observer(API, endpoint, status, time.Since(start))
	}
	return resp, err //nolint:wrapcheck // a transport must not wrap
}

// call describes one API request.
type call struct {
	method string
	// endpoint is the bounded template reported to the Observer.
	endpoint string
	// path is below the base URL, without query.
	path  string
	query string
	// orga authenticates the call; nil for the public /products routes.
	orga *Orga
	body any
	// noRetry marks a non-idempotent request.
	noRetry bool
}

// do performs c and decodes a 2xx JSON body into out (when non-nil).
func (c *Client) do(ctx context.Context, cl call, out any) error {
	var body []byte
	if cl.body != nil {
		var err error
		if body, err = json.Marshal(cl.body); err != nil {
			return fmt.Errorf("encode %s %s body: %w", cl.method, cl.path, err)
		}
	}
	ctx = context.WithValue(ctx, endpointKey, cl.endpoint)
	if cl.noRetry {
		ctx = context.WithValue(ctx, noRetryKey, true)
	}
	u := c.base + cl.path
	if cl.query != "" {
		u += "?" + cl.query
	}
	var rawBody any
	if body != nil {
		rawBody = body
	}
	req, err := retryablehttp.NewRequestWithContext(ctx, cl.method, u, rawBody)
	if err != nil {
		return fmt.Errorf("build %s %s request: %w", cl.method, cl.path, err)
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if cl.orga != nil {
		req.Header.Set("Authorization", c.authorization(cl.orga.Token))
	}
	start := time.Now()
	resp, err := c.http.Do(req)
	if err != nil {
		if resp != nil {
			_ = resp.Body.Close()
		}
		c.log.WithFields(logrus.Fields{"method": cl.method, "endpoint": cl.endpoint, "error": err}).Debug("clever api call failed")
		if ctx.Err() != nil {
			return fmt.Errorf("clever api %s %s: %w", cl.method, cl.path, ctx.Err())
		}
		return fmt.Errorf("clever api %s %s: %w", cl.method, cl.path, err)
	}
	defer resp.Body.Close()
	c.log.WithFields(logrus.Fields{
		"method": cl.method, "endpoint": cl.endpoint, "status": resp.StatusCode,
		"duration": time.Since(start).Round(time.Millisecond).String(),
		"sozu_id":  resp.Header.Get("Sozu-Id"),
	}).Debug("clever api call")
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return fmt.Errorf("read clever api %s %s response: %w", cl.method, cl.path, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return newAPIError(cl.method, cl.path, resp, data)
	}
	if out == nil || len(bytes.TrimSpace(data)) == 0 {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("decode clever api %s %s response: %w", cl.method, cl.path, err)
	}
	return nil
}

func (c *Client) authorization(tok config.Secret) string {
	if c.scheme == SchemeBearer {
		return "Bearer " + tok.Reveal()
	}
	return "token " + tok.Reveal()
}

// sleep waits d or until ctx is done; it reports whether d elapsed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
