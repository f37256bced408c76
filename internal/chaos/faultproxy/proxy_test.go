package faultproxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"syscall"
	"testing"
	"time"
)

// These tests need no emulator: the target is a local httptest server.

// target starts an httptest server answering 200 {} (after handler, if not nil).
func target(t *testing.T, handler func(w http.ResponseWriter, r *http.Request)) *httptest.Server {
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if handler != nil {
			handler(w, r)
			return
		}
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		_, _ = io.WriteString(w, "{}")
	}))
	t.Cleanup(s.Close)
	return s
}

// post sends one AWS-JSON-style request for the operation amzTarget and returns the answer
// with its body read.
func post(ctx context.Context, c *http.Client, url, amzTarget, body string) (*http.Response, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url+"/", strings.NewReader(body))
	if err != nil {
		return nil, "", err
	}
	req.Header.Set("X-Amz-Target", amzTarget)
	req.Header.Set("Content-Type", "application/x-amz-json-1.1")
	resp, err := c.Do(req)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, string(b), err
}

func TestNewRejectsBadArguments(t *testing.T) {
	for _, tc := range []struct {
		service Service
		target  string
	}{
		{Service(7), "http://127.0.0.1:4567"},
		{Kinesis, "127.0.0.1:4567"},
		{Kinesis, "ftp://127.0.0.1:4567"},
		{DynamoDB, "http://"},
		{DynamoDB, "http://[::1"},
	} {
		if p, err := New(tc.service, tc.target); err == nil {
			_ = p.Close()
			t.Errorf("New(%v, %q) succeeded", tc.service, tc.target)
		}
	}
}

func TestSetFaultsRejectsInvalid(t *testing.T) {
	p := start(t, Kinesis, target(t, nil).URL)
	for _, tc := range []struct {
		name   string
		faults Faults
	}{
		{"negative rate", Faults{ThrottleRate: -0.1}},
		{"rate above 1", Faults{ServerErrorRate: 1.5}},
		{"NaN rate", Faults{ResetRate: nanValue()}},
		{"rates above 1 together", Faults{ThrottleRate: 0.6, ResetRate: 0.5}},
		{"negative latency", Faults{Latency: -time.Second}},
		{"rates above 1 with ErrorRate", Faults{ThrottleRate: 0.6, ErrorRate: 0.5, ErrorCode: "KMSDisabledException"}},
		{"ErrorRate without ErrorCode", Faults{ErrorRate: 0.5}},
		{"ErrorStatus not an error", Faults{ErrorRate: 1, ErrorCode: "InternalFailure", ErrorStatus: 200}},
		{"negative backlog", Faults{Backlog: -time.Second}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Fatalf("SetFaults(%+v) did not panic", tc.faults)
				}
			}()
			p.SetFaults(tc.faults)
		})
	}
	p.SetFaults(Faults{ThrottleRate: 0.5, ServerErrorRate: 0.3, ResetRate: 0.2}) // sums to 1: valid
}

func nanValue() float64 {
	zero := 0.0
	return zero / zero
}

// TestFakedAnswerFormat pins the wire format of the faked errors.
func TestFakedAnswerFormat(t *testing.T) {
	cases := []struct {
		service     Service
		faults      *Faults // installed before the case; nil: the previous case's, which alternate
		status      int
		contentType string
		code        string
	}{
		{Kinesis, &Faults{ThrottleRate: 1}, 400, "application/x-amz-json-1.1", codeThroughput},
		{DynamoDB, &Faults{ThrottleRate: 1}, 400, "application/x-amz-json-1.0", codeThroughput},
		{DynamoDB, nil, 400, "application/x-amz-json-1.0", codeThrottling},
		{Kinesis, &Faults{ServerErrorRate: 1}, 500, "application/x-amz-json-1.1", codeInternal},
		{Kinesis, nil, 503, "application/x-amz-json-1.1", codeUnavailable},
		{DynamoDB, &Faults{RejectCredentials: true}, 400, "application/x-amz-json-1.0", codeUnrecognized},
	}
	proxies := map[Service]*Proxy{}
	for _, s := range []Service{Kinesis, DynamoDB} {
		proxies[s] = start(t, s, target(t, nil).URL)
	}
	c := &http.Client{Transport: transport(t)}
	for _, tc := range cases {
		p := proxies[tc.service]
		if tc.faults != nil {
			p.SetFaults(*tc.faults)
		}
		resp, body, err := post(callCtx(t), c, p.URL(), "X.Op", "{}")
		if err != nil {
			t.Fatal(err)
		}
		h := resp.Header
		wantPrefix := fmt.Sprintf(`{"__type":%q,"message":"`, tc.code)
		if resp.StatusCode != tc.status || h.Get("Content-Type") != tc.contentType ||
			h.Get("X-Amzn-ErrorType") != tc.code || h.Get("X-Amzn-RequestId") == "" ||
			!strings.HasPrefix(body, wantPrefix) || !strings.HasSuffix(body, `"}`) {
			t.Errorf("%v %s: got %d %v %s", tc.service, tc.code, resp.StatusCode, h, body)
		}
	}
}

// TestForwardPassesRequestsThrough checks what the target sees and what the client gets back.
func TestForwardPassesRequestsThrough(t *testing.T) {
	type seen struct{ host, path, target, body string }
	seenc := make(chan seen, 1)
	tg := target(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		seenc <- seen{r.Host, r.URL.Path, r.Header.Get("X-Amz-Target"), string(b)}
		w.Header().Set("X-Amz-Crc32", "12345")
		_, _ = io.WriteString(w, `{"ok":true}`)
	})
	p := start(t, DynamoDB, tg.URL)
	body := strings.Repeat("x", 1<<20) // streamed, not buffered whole
	resp, got, err := post(callCtx(t), &http.Client{Transport: transport(t)}, p.URL(), "DynamoDB_20120810.PutItem", body)
	if err != nil {
		t.Fatal(err)
	}
	s := <-seenc
	if s.host != strings.TrimPrefix(tg.URL, "http://") || s.path != "/" || s.target != "DynamoDB_20120810.PutItem" || s.body != body {
		t.Errorf("target saw host %q path %q target %q body of %d bytes", s.host, s.path, s.target, len(s.body))
	}
	if resp.StatusCode != 200 || got != `{"ok":true}` || resp.Header.Get("X-Amz-Crc32") != "12345" {
		t.Errorf("client got %d %v %s", resp.StatusCode, resp.Header, got)
	}

	// A target that is down is a 502 from the proxy.
	tg.Close()
	resp, got, err = post(callCtx(t), &http.Client{Transport: transport(t)}, p.URL(), "DynamoDB_20120810.PutItem", "{}")
	if err != nil || resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("target down: got %v %s, %v; want 502", resp, got, err)
	}
	if st := p.Stats(); st != (Stats{Forwarded: 2}) {
		t.Fatalf("Stats = %+v", st)
	}
}

// TestRatesReproducible checks that rates split the requests as asked and that the same seed
// gives the same sequence of faults.
func TestRatesReproducible(t *testing.T) {
	p := start(t, Kinesis, target(t, nil).URL)
	faults := Faults{ThrottleRate: 0.3, ServerErrorRate: 0.2, ResetRate: 0.1, Seed: 42}
	const n = 200
	run := func(f Faults) (string, Stats) {
		p.SetFaults(f)
		before := p.Stats()
		c := &http.Client{Transport: transport(t)}
		var seq strings.Builder
		for range n {
			resp, _, err := post(callCtx(t), c, p.URL(), "Kinesis_20131202.GetRecords", "{}")
			switch {
			case err != nil && errors.Is(err, syscall.ECONNRESET):
				seq.WriteByte('R')
			case err != nil:
				t.Fatalf("request failed without a reset: %v", err)
			case resp.StatusCode == 200:
				seq.WriteByte('.')
			case resp.StatusCode == 400:
				seq.WriteByte('T')
			case resp.StatusCode >= 500:
				seq.WriteByte('5')
			}
		}
		st := p.Stats()
		return seq.String(), Stats{
			Forwarded: st.Forwarded - before.Forwarded, Throttled: st.Throttled - before.Throttled,
			ServerErrors: st.ServerErrors - before.ServerErrors, Resets: st.Resets - before.Resets,
		}
	}
	first, st := run(faults)
	counts := Stats{
		Forwarded: strings.Count(first, "."), Throttled: strings.Count(first, "T"),
		ServerErrors: strings.Count(first, "5"), Resets: strings.Count(first, "R"),
	}
	if st != counts {
		t.Fatalf("Stats %+v do not match the answers %+v", st, counts)
	}
	for _, c := range []struct {
		name string
		got  int
		rate float64
	}{{"forwarded", counts.Forwarded, 0.4}, {"throttled", counts.Throttled, 0.3}, {"5xx", counts.ServerErrors, 0.2}, {"resets", counts.Resets, 0.1}} {
		if want := c.rate * n; float64(c.got) < want/2 || float64(c.got) > want*1.5 {
			t.Errorf("%s: %d of %d, want about %v", c.name, c.got, n, want)
		}
	}
	if again, _ := run(faults); again != first {
		t.Errorf("same seed, other sequence:\n%s\n%s", first, again)
	}
	faults.Seed++
	if other, _ := run(faults); other == first {
		t.Errorf("another seed gave the same sequence %s", first)
	}
}

// TestLatency checks that latency delays matching requests only.
func TestLatency(t *testing.T) {
	p := start(t, Kinesis, target(t, nil).URL)
	const latency = 150 * time.Millisecond
	p.SetFaults(Faults{Latency: latency, Operations: []string{"PutRecords"}})
	ev := events(p)
	c := &http.Client{Transport: transport(t)}
	begin := time.Now()
	if resp, _, err := post(callCtx(t), c, p.URL(), "Kinesis_20131202.PutRecords", "{}"); err != nil || resp.StatusCode != 200 {
		t.Fatalf("got %v, %v", resp, err)
	}
	if d := time.Since(begin); d < latency {
		t.Fatalf("answered after %v, want at least %v", d, latency)
	}
	await(t, ev, eventWaiting)
	if resp, _, err := post(callCtx(t), c, p.URL(), "Kinesis_20131202.GetRecords", "{}"); err != nil || resp.StatusCode != 200 {
		t.Fatalf("got %v, %v", resp, err)
	}
	select {
	case e := <-ev:
		t.Fatalf("GetRecords waited (event %d); only PutRecords should", e)
	default:
	}
}

// TestPartitionDropsAnswersInFlight checks that the answer of a request forwarded before the
// partition is held, then reset when the partition lifts.
func TestPartitionDropsAnswersInFlight(t *testing.T) {
	arrived, release := make(chan struct{}), make(chan struct{})
	p := start(t, Kinesis, target(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		close(arrived)
		<-release
		_, _ = io.WriteString(w, "{}")
	}).URL)
	ev := events(p)
	errc := make(chan error, 1)
	go func() {
		_, _, err := post(t.Context(), &http.Client{Transport: transport(t)}, p.URL(), "Kinesis_20131202.PutRecord", "{}")
		errc <- err
	}()
	<-arrived
	p.Partition(true)
	close(release)
	await(t, ev, eventHeld)
	p.Partition(false)
	if err := <-errc; !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("error = %v, want a connection reset", err)
	}
	if got, want := p.Stats(), (Stats{Forwarded: 1, Held: 1}); got != want {
		t.Fatalf("Stats = %+v, want %+v", got, want)
	}
}

// TestCloseEndsRequests checks that Close ends held requests and requests waiting their
// latency, that it is idempotent and that the proxy stops listening.
func TestCloseEndsRequests(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(p *Proxy)
		event event
	}{
		{"held", func(p *Proxy) { p.Partition(true) }, eventHeld},
		{"waiting latency", func(p *Proxy) { p.SetFaults(Faults{Latency: time.Hour}) }, eventWaiting},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p, err := New(Kinesis, target(t, nil).URL)
			if err != nil {
				t.Fatal(err)
			}
			tc.setup(p)
			ev := events(p)
			errc := make(chan error, 1)
			go func() {
				_, _, err := post(t.Context(), &http.Client{Transport: transport(t)}, p.URL(), "Kinesis_20131202.GetRecords", "{}")
				errc <- err
			}()
			await(t, ev, tc.event)
			if err := p.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			// Held requests were read whole: the client waits for the answer and sees the
			// reset. One waiting its latency may still be sending and see its write fail.
			err = <-errc
			var ue *url.Error
			if !errors.As(err, &ue) || ue.Timeout() || tc.event == eventHeld && !errors.Is(err, syscall.ECONNRESET) {
				t.Fatalf("request error = %v, want a connection error (a reset when held)", err)
			}
			if err := p.Close(); err != nil {
				t.Fatalf("second Close: %v", err)
			}
			if conn, err := net.Dial("tcp", strings.TrimPrefix(p.URL(), "http://")); err == nil {
				conn.Close()
				t.Fatal("the proxy still accepts connections after Close")
			}
		})
	}
}
