package kinesisfake

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
)

// Static credentials for clients of the fake (it checks none).
const (
	AccessKeyID     = "AKIDKINESISFAKE"
	SecretAccessKey = "kinesisfake-secret"
	Region          = "us-east-1"
)

// Server is a Fake served by an httptest.Server.
type Server struct {
	*Fake
	HTTP *httptest.Server
	// URL is the endpoint to use as BaseEndpoint, e.g. http://127.0.0.1:41234.
	URL string
}

// Start serves a new Fake on a local httptest server that is closed when
// the test ends.
func Start(tb testing.TB, opts ...Option) *Server {
	tb.Helper()
	f := New(opts...)
	hs := httptest.NewServer(f)
	tb.Cleanup(hs.Close)
	return &Server{Fake: f, HTTP: hs, URL: hs.URL}
}

// HTTPClient returns an http.Client for the server whose transport is
// wrapped with WrapTransport.
func (s *Server) HTTPClient() *http.Client {
	return &http.Client{Transport: WrapTransport(s.HTTP.Client().Transport)}
}

// Client returns an aws-sdk-go-v2 Kinesis client for the server: region
// us-east-1, static credentials, BaseEndpoint = URL, HTTPClient =
// s.HTTPClient(). optFns can adjust it, e.g.
// func(o *kinesis.Options) { o.Retryer = aws.NopRetryer{} }.
func (s *Server) Client(optFns ...func(*kinesis.Options)) *kinesis.Client {
	return kinesis.New(kinesis.Options{
		Region:       Region,
		BaseEndpoint: aws.String(s.URL),
		Credentials:  credentials.NewStaticCredentialsProvider(AccessKeyID, SecretAccessKey, ""),
		HTTPClient:   s.HTTPClient(),
	}, optFns...)
}

// WrapTransport works around a client-side race that a fast local endpoint
// exposes in aws-sdk-go-v2 (smithy-go v1.28): smithy closes the request body
// as soon as the response headers arrive, and its closed body's WriteTo
// returns io.EOF as an error. net/http's writeLoop probes the body for extra
// bytes after sending it (io.Copy, which uses WriteTo); if the server has
// already answered, the probe fails, the transport closes the connection and
// the SDK's read of the response body fails with "use of closed network
// connection" (status 200, "deserialization failed"). Real AWS is far
// enough away that the probe always wins. The SDK's default retryer retries
// net.ErrClosed, so it mostly hides this; with aws.NopRetryer{} it shows up
// as rare flaky failures. Hiding WriteTo makes io.Copy use Read, which
// reports a closed body as a clean EOF.
func WrapTransport(rt http.RoundTripper) http.RoundTripper {
	if rt == nil {
		rt = http.DefaultTransport
	}
	return bodyTransport{rt}
}

type bodyTransport struct{ rt http.RoundTripper }

type readOnlyBody struct{ io.ReadCloser }

func (t bodyTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body == nil || r.Body == http.NoBody {
		return t.rt.RoundTrip(r)
	}
	r2 := new(http.Request)
	*r2 = *r
	r2.Body = readOnlyBody{r.Body}
	return t.rt.RoundTrip(r2)
}

func (t bodyTransport) CloseIdleConnections() {
	if c, ok := t.rt.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}
