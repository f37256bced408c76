package faultproxy

import (
	"context"
	"errors"
	"net"
	"net/http"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/benthos-kinesis/benthos-kinesis/internal/awssession"
	"github.com/benthos-kinesis/benthos-kinesis/internal/testenv"
)

// callTimeout bounds every SDK call of the tests that is expected to end on its own, so a
// hang fails the test instead of blocking it.
const callTimeout = 5 * time.Second

// start starts a proxy closed when the test ends.
func start(t *testing.T, s Service, target string) *Proxy {
	t.Helper()
	p, err := New(s, target)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return p
}

// events installs a test hook on p and returns the channel it reports to.
func events(p *Proxy) <-chan event {
	ch := make(chan event, 64)
	p.mu.Lock()
	p.hook = func(e event) { ch <- e }
	p.mu.Unlock()
	return ch
}

// await waits for the next event, which must be want.
func await(t *testing.T, ch <-chan event, want event) {
	t.Helper()
	select {
	case got := <-ch:
		if got != want {
			t.Fatalf("event %d, want %d", got, want)
		}
	case <-time.After(callTimeout):
		t.Fatalf("no event %d within %v", want, callTimeout)
	}
}

// transport returns an HTTP transport of the test's own, so no connection is shared with
// another test or client.
func transport(t *testing.T) *http.Transport {
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 2 * time.Second}).DialContext,
		MaxIdleConnsPerHost: 8,
	}
	t.Cleanup(tr.CloseIdleConnections)
	return tr
}

// kinesisVia returns a Kinesis client that talks to p with its own connections and no retries.
func kinesisVia(t *testing.T, p *Proxy) *kinesis.Client {
	hc := awssession.ReadOnlyBodies(&http.Client{Transport: transport(t)})
	return testenv.NewKinesisClient(p.URL(), func(o *kinesis.Options) {
		o.HTTPClient = hc
		o.Retryer = aws.NopRetryer{}
	})
}

// dynamoVia returns a DynamoDB client that talks to p with its own connections and no retries.
func dynamoVia(t *testing.T, p *Proxy) *dynamodb.Client {
	hc := awssession.ReadOnlyBodies(&http.Client{Transport: transport(t)})
	return testenv.NewDynamoDBClient(p.URL(), func(o *dynamodb.Options) {
		o.HTTPClient = hc
		o.Retryer = aws.NopRetryer{}
	})
}

// callCtx returns a context bounded by callTimeout.
func callCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), callTimeout)
	t.Cleanup(cancel)
	return ctx
}

// apiError returns err's API error code and message, failing t if it has none.
func apiError(t *testing.T, err error) (code, msg string) {
	t.Helper()
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		t.Fatalf("error %v (%T) is not an API error", err, err)
	}
	return ae.ErrorCode(), ae.ErrorMessage()
}

// httpStatus returns the HTTP status of err's response, failing t if it has none; it also
// checks that the response carried a request ID.
func httpStatus(t *testing.T, err error) int {
	t.Helper()
	var re *awshttp.ResponseError
	if !errors.As(err, &re) {
		t.Fatalf("error %v (%T) has no HTTP response", err, err)
	}
	if re.ServiceRequestID() == "" {
		t.Errorf("error %v has no request ID", err)
	}
	return re.HTTPStatusCode()
}

// assertReset checks that err is a connection reset seen while sending or awaiting the
// request, with no answer.
func assertReset(t *testing.T, err error) {
	t.Helper()
	var send *smithyhttp.RequestSendError
	var ae smithy.APIError
	switch {
	case err == nil:
		t.Fatal("call succeeded, want a connection reset")
	case errors.As(err, &ae):
		t.Fatalf("got an answer %v, want a connection reset", err)
	case !errors.As(err, &send):
		t.Fatalf("error %v (%T) is not a RequestSendError", err, err)
	case !errors.Is(err, syscall.ECONNRESET):
		t.Fatalf("error %v is not ECONNRESET", err)
	}
}
