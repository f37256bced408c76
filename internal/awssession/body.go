package awssession

import (
	"bytes"
	"fmt"
	"io"
	"net/http"

	"github.com/aws/aws-sdk-go-v2/aws"
)

// ReadOnlyBodies wraps an SDK HTTP client so that request bodies only offer
// Read to net/http.
//
// smithy-go closes a request body as soon as the response headers arrive,
// and its closed body's WriteTo returns io.EOF as an error. net/http probes
// the body after sending it (io.Copy, which prefers WriteTo); when a fast
// endpoint has already answered, the probe fails, the transport closes the
// connection, and reading the 200 response fails ("use of closed network
// connection"). For PutRecords that is worse than noise: the records were
// written, so a retry writes them twice. Without WriteTo, io.Copy uses Read,
// which reports a closed body as a clean EOF. A small body is sent from a copy instead (see
// smallBody), which has neither problem.
func ReadOnlyBodies(c aws.HTTPClient) aws.HTTPClient {
	if c == nil {
		c = http.DefaultClient
	}
	if _, ok := c.(readOnlyBodies); ok {
		return c
	}
	return readOnlyBodies{c}
}

type readOnlyBodies struct{ inner aws.HTTPClient }

type readOnlyBody struct{ io.ReadCloser }

// smallBody is the largest request body sent from a copy (see Do).
const smallBody = 64 << 10

func (c readOnlyBodies) Do(r *http.Request) (*http.Response, error) {
	if r.Body == nil || r.Body == http.NoBody {
		return c.inner.Do(r)
	}
	r2 := new(http.Request)
	*r2 = *r
	if n := r.ContentLength; n > 0 && n <= smallBody {
		// A small body goes from a copy in a bytes.Reader: net/http writes the headers and such
		// a body in one write, where for any other body it flushes the headers first. One
		// syscall and one packet fewer per call is a good part of what a small call (GetRecords,
		// a lease-table read or heartbeat) costs an idle process. Closing the SDK's body cannot
		// touch the copy either.
		b := make([]byte, n)
		if _, err := io.ReadFull(r.Body, b); err != nil {
			return nil, fmt.Errorf("read the request body: %w", err)
		}
		r2.Body = io.NopCloser(bytes.NewReader(b))
		return c.inner.Do(r2)
	}
	r2.Body = readOnlyBody{r.Body}
	return c.inner.Do(r2)
}
