package awssession

import (
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
// which reports a closed body as a clean EOF.
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

func (c readOnlyBodies) Do(r *http.Request) (*http.Response, error) {
	if r.Body == nil || r.Body == http.NoBody {
		return c.inner.Do(r)
	}
	r2 := new(http.Request)
	*r2 = *r
	r2.Body = readOnlyBody{r.Body}
	return c.inner.Do(r2)
}
