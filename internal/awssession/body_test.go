package awssession

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

// countingConn counts the writes of a client connection.
type countingConn struct {
	net.Conn
	writes *atomic.Int64
}

func (c countingConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}

// sdkBody is a request body of the kind smithy-go hands net/http: not a type net/http knows
// to be in memory.
type sdkBody struct{ io.Reader }

func (sdkBody) Close() error { return nil }

func TestReadOnlyBodies(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		_, _ = w.Write(b) // echo, once read: a server cannot read on once it answers
	}))
	defer srv.Close()
	cases := []struct {
		name       string
		size       int
		wantWrites int64 // 0: not checked
	}{
		{name: "no body", size: 0, wantWrites: 1},
		{name: "small body: headers and body in one write", size: 1000, wantWrites: 1},
		{name: "largest copied body", size: smallBody},
		{name: "large body: streamed", size: smallBody + 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var writes atomic.Int64
			c := ReadOnlyBodies(&http.Client{Transport: &http.Transport{
				DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
					conn, err := (&net.Dialer{}).DialContext(ctx, network, addr)
					return countingConn{conn, &writes}, err
				},
			}})
			body := strings.Repeat("x", tc.size)
			req, err := http.NewRequest(http.MethodPost, srv.URL, nil)
			if err != nil {
				t.Fatal(err)
			}
			if tc.size > 0 {
				req.Body, req.ContentLength = sdkBody{strings.NewReader(body)}, int64(tc.size)
			}
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, []byte(body)) {
				t.Fatalf("the server got %d bytes, want the %d sent", len(got), tc.size)
			}
			if tc.wantWrites > 0 && writes.Load() != tc.wantWrites {
				t.Fatalf("%d writes on the connection, want %d", writes.Load(), tc.wantWrites)
			}
		})
	}
}
