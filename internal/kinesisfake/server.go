package kinesisfake

import (
	"net/http/httptest"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/benthos-kinesis/benthos-kinesis/internal/awssession"
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

// HTTPClient returns an SDK HTTP client for the server, with the request
// bodies read-only (see awssession.ReadOnlyBodies for the SDK race it avoids
// against a fast local endpoint).
func (s *Server) HTTPClient() aws.HTTPClient {
	return awssession.ReadOnlyBodies(s.HTTP.Client())
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
