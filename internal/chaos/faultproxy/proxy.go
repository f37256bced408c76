package faultproxy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"sync"
	"time"
)

// Proxy is a fault-injecting reverse proxy in front of one target. Its methods are safe for
// concurrent use.
type Proxy struct {
	service   Service
	url       string
	srv       *http.Server
	rp        *httputil.ReverseProxy
	transport *http.Transport
	cancel    context.CancelFunc // cancels the base of every request's context
	serveDone chan struct{}
	// connWG counts the server's connection goroutines (ConnState New until Hijacked or
	// Closed), handlers the running handlers; Close waits for both.
	connWG   sync.WaitGroup
	handlers sync.WaitGroup

	mu          sync.Mutex
	closed      bool
	conns       map[net.Conn]struct{} // server connections not yet hijacked or closed
	faults      Faults
	ops         map[string]struct{} // faults.Operations as a set; nil: all operations
	rng         *rand.Rand
	throttles   uint64 // throttling answers since SetFaults, to alternate codes
	serverErrs  uint64 // 5xx answers since SetFaults, to alternate 500 and 503
	requestSeq  uint64
	partitioned bool
	held        []net.Conn // hijacked connections held by the partition
	stats       Stats
	requests    map[string]int // requests received, by operation name
	hook        func(event)    // test hook, called outside mu
}

// event is what a test hook is told.
type event int

const (
	eventWaiting event = iota // a request starts waiting its Latency
	eventHeld                 // a connection is held by the partition
)

// errPartitioned makes the ReverseProxy drop an answer that arrived during a partition.
var errPartitioned = errors.New("faultproxy: partitioned")

// New starts a proxy for service on 127.0.0.1 (a free port) that forwards to target, an
// http(s)://host:port URL such as "http://127.0.0.1:4567". It injects no faults until SetFaults
// or Partition. Close stops it.
func New(service Service, target string) (*Proxy, error) {
	if service != Kinesis && service != DynamoDB {
		return nil, fmt.Errorf("faultproxy: unknown %v", service)
	}
	u, err := url.Parse(target)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("faultproxy: target %q is not an http(s)://host:port URL", target)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("faultproxy: listen: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &Proxy{
		service:   service,
		url:       "http://" + ln.Addr().String(),
		cancel:    cancel,
		serveDone: make(chan struct{}),
		conns:     map[net.Conn]struct{}{},
		requests:  map[string]int{},
		rng:       newRand(0),
		transport: &http.Transport{
			Proxy:               nil, // straight to the target, whatever HTTP_PROXY says
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConns:        64,
			MaxIdleConnsPerHost: 64,
			// Below the emulators' keep-alive timeout (node's is 5 s), so the proxy does not
			// reuse a connection the target is closing: its POST could not be retried and the
			// client would get a 502 no test asked for.
			IdleConnTimeout:    2 * time.Second,
			DisableCompression: true, // pass bodies through as the client and target chose
		},
	}
	p.rp = &httputil.ReverseProxy{
		Rewrite:        p.rewrite(u),
		Transport:      p.transport,
		ModifyResponse: p.checkAnswer,
		ErrorHandler:   p.forwardError,
		// Failed copies are expected when faults and Close cut connections.
		ErrorLog: log.New(io.Discard, "", 0),
	}
	p.srv = &http.Server{
		Handler:     http.HandlerFunc(p.serve),
		BaseContext: func(net.Listener) context.Context { return ctx },
		ConnState:   p.connState,
	}
	go func() {
		defer close(p.serveDone)
		_ = p.srv.Serve(ln) // returns http.ErrServerClosed after Close
	}()
	return p, nil
}

func newRand(seed uint64) *rand.Rand {
	return rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
}

// URL returns the proxy's endpoint, "http://127.0.0.1:PORT", to use as a client's BaseEndpoint.
func (p *Proxy) URL() string { return p.url }

// SetFaults replaces the faults injected from now on and reseeds the random source with f.Seed.
// It panics when f is invalid: a rate outside [0, 1], rates summing to more than 1, or a
// negative Latency.
func (p *Proxy) SetFaults(f Faults) {
	if err := f.validate(); err != nil {
		panic("faultproxy: SetFaults: " + err.Error())
	}
	var ops map[string]struct{}
	if len(f.Operations) > 0 {
		ops = make(map[string]struct{}, len(f.Operations))
		for _, op := range f.Operations {
			ops[op] = struct{}{}
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.faults, p.ops = f, ops
	p.rng = newRand(f.Seed)
	p.throttles, p.serverErrs = 0, 0
}

// Partition turns the black hole on or off. While on, every request is held unanswered (and so
// is the answer of any request forwarded before); turning it off resets the held connections.
func (p *Proxy) Partition(on bool) {
	p.mu.Lock()
	p.partitioned = on
	var held []net.Conn
	if !on {
		held, p.held = p.held, nil
	}
	p.mu.Unlock()
	for _, c := range held {
		reset(c)
	}
}

// Requests returns how many requests of the operation op ("GetRecords") the proxy received so
// far, whatever their fate.
func (p *Proxy) Requests(op string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.requests[op]
}

// Stats returns the counts so far.
func (p *Proxy) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stats
}

// Close stops listening, resets the held connections and those of requests in flight, and
// waits for the proxy's goroutines. It is idempotent.
func (p *Proxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	held := p.held
	p.held = nil
	p.mu.Unlock()

	p.cancel() // ends latency waits and forwarded requests
	for _, c := range held {
		reset(c)
	}
	// Reset the connections, so requests in flight end as the held ones do, not with a
	// clean close that srv.Close would give them, then stop listening.
	p.resetConns()
	err := p.srv.Close()
	<-p.serveDone
	p.resetConns() // accepted just before the listener closed, tracked after srv.Close looked
	p.connWG.Wait()
	p.handlers.Wait()
	p.transport.CloseIdleConnections()
	if err != nil {
		return fmt.Errorf("faultproxy: close: %w", err)
	}
	return nil
}

// resetConns resets the server's connections that are not hijacked or closed yet.
func (p *Proxy) resetConns() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		reset(c)
	}
}

func (p *Proxy) connState(c net.Conn, s http.ConnState) {
	switch s {
	case http.StateNew: // in the Serve goroutine, before Serve can return
		p.mu.Lock()
		p.conns[c] = struct{}{}
		p.mu.Unlock()
		p.connWG.Add(1)
	case http.StateHijacked, http.StateClosed:
		p.mu.Lock()
		_, ok := p.conns[c]
		delete(p.conns, c)
		p.mu.Unlock()
		if ok {
			p.connWG.Done()
		}
	}
}

// action is what the proxy does with a request.
type action int

const (
	actForward action = iota
	actHold
	actReset
	actAnswer
)

// serve is the proxy's handler: it waits the latency, then holds, resets, answers or forwards.
func (p *Proxy) serve(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		resetWriter(w)
		return
	}
	p.handlers.Add(1)
	defer p.handlers.Done()
	target := r.Header.Get("X-Amz-Target")
	p.requests[operation(target)]++
	latency := time.Duration(0)
	if p.matchLocked(target) {
		latency = p.faults.Latency
	}
	hook := p.hook
	p.mu.Unlock()

	if latency > 0 && hook != nil {
		hook(eventWaiting)
	}
	if latency > 0 && !sleep(r.Context(), latency) {
		resetWriter(w) // Close, or the client is gone
		return
	}
	act, ans, id := p.decide(target)
	if act == actForward {
		p.rp.ServeHTTP(w, r)
		return
	}
	// Read the whole request first, as AWS does: an answer before the body is sent races
	// the SDK (see awssession.ReadOnlyBodies), and a reset while the client still writes
	// reaches it as a write error on a closed connection instead of a reset.
	drain(r)
	switch act {
	case actHold:
		p.hold(w)
	case actReset:
		resetWriter(w)
	default:
		ans.write(w, p.service, id)
	}
}

// drain reads and discards the request body, unless the client waits for "100 Continue",
// which reading would send: no answer at all may reach a held or reset request.
func drain(r *http.Request) {
	if r.Header.Get("Expect") == "" {
		_, _ = io.Copy(io.Discard, r.Body)
	}
}

// matchLocked reports whether the faults apply to a request with this X-Amz-Target.
func (p *Proxy) matchLocked(target string) bool {
	if p.ops == nil {
		return true
	}
	if _, ok := p.ops[target]; ok {
		return true
	}
	_, ok := p.ops[operation(target)]
	return ok
}

// decide picks the fate of a request and counts it.
func (p *Proxy) decide(target string) (action, fake, string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.partitioned {
		return actHold, fake{}, "" // counted by hold
	}
	f := p.faults
	if !p.matchLocked(target) {
		p.stats.Forwarded++
		return actForward, fake{}, ""
	}
	if f.RejectCredentials {
		p.stats.Rejected++
		return actAnswer, rejected(), p.requestIDLocked()
	}
	if f.ResetRate+f.ThrottleRate+f.ServerErrorRate+f.ErrorRate > 0 {
		u := p.rng.Float64()
		switch {
		case u < f.ResetRate:
			p.stats.Resets++
			return actReset, fake{}, ""
		case u < f.ResetRate+f.ThrottleRate:
			p.stats.Throttled++
			ans := throttle(p.service, p.throttles)
			p.throttles++
			return actAnswer, ans, p.requestIDLocked()
		case u < f.ResetRate+f.ThrottleRate+f.ServerErrorRate:
			p.stats.ServerErrors++
			ans := serverError(p.serverErrs)
			p.serverErrs++
			return actAnswer, ans, p.requestIDLocked()
		case u < f.ResetRate+f.ThrottleRate+f.ServerErrorRate+f.ErrorRate:
			p.stats.Errors++
			return actAnswer, codedError(f.ErrorCode, f.ErrorStatus), p.requestIDLocked()
		}
	}
	p.stats.Forwarded++
	return actForward, fake{}, ""
}

// requestIDLocked returns a request ID shaped like AWS's (a UUID), unique per proxy.
func (p *Proxy) requestIDLocked() string {
	p.requestSeq++
	return fmt.Sprintf("fa017000-0000-4000-8000-%012x", p.requestSeq)
}

// hold takes the request's connection and keeps it unanswered until the partition is lifted or
// the proxy closes; if either happened already, it resets the connection now.
func (p *Proxy) hold(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(http.ErrAbortHandler) // cannot hold it: at least never answer it
	}
	p.mu.Lock()
	p.stats.Held++
	if !p.partitioned || p.closed {
		p.mu.Unlock()
		reset(conn)
		return
	}
	p.held = append(p.held, conn)
	hook := p.hook
	p.mu.Unlock()
	if hook != nil {
		hook(eventHeld)
	}
}

// rewrite is the ReverseProxy's Rewrite: to the target, and, while Backlog is on, GetRecords
// asks for an answer that is not compressed, so that the proxy can rewrite it.
func (p *Proxy) rewrite(u *url.URL) func(*httputil.ProxyRequest) {
	return func(pr *httputil.ProxyRequest) {
		pr.SetURL(u)
		p.mu.Lock()
		backlog := p.faults.Backlog
		p.mu.Unlock()
		if backlog > 0 && p.isGetRecords(pr.Out) {
			pr.Out.Header.Set("Accept-Encoding", "identity")
		}
	}
}

func (p *Proxy) isGetRecords(r *http.Request) bool {
	return p.service == Kinesis && operation(r.Header.Get("X-Amz-Target")) == "GetRecords"
}

// checkAnswer is the ReverseProxy's ModifyResponse: an answer arriving during a partition is
// dropped, and its connection held; with Backlog, a GetRecords answer is rewritten.
func (p *Proxy) checkAnswer(resp *http.Response) error {
	p.mu.Lock()
	if p.partitioned {
		p.mu.Unlock()
		return errPartitioned
	}
	backlog := p.faults.Backlog
	p.mu.Unlock()
	if backlog > 0 && resp.StatusCode == http.StatusOK && p.isGetRecords(resp.Request) {
		return p.reportBacklog(resp, backlog)
	}
	return nil
}

// reportBacklog rewrites a GetRecords answer that carries records to report MillisBehindLatest
// = backlog, and fixes its Content-Length. An answer it cannot parse (or compressed) and an
// answer without records (the reader is at the tip) pass unchanged.
func (p *Proxy) reportBacklog(resp *http.Response, backlog time.Duration) error {
	body, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if err != nil {
		return err // the ErrorHandler answers 502, or resets if the client is gone
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	if enc := resp.Header.Get("Content-Encoding"); enc != "" && enc != "identity" {
		return nil
	}
	var answer map[string]json.RawMessage
	var records []json.RawMessage
	if json.Unmarshal(body, &answer) != nil || json.Unmarshal(answer["Records"], &records) != nil || len(records) == 0 {
		return nil
	}
	answer["MillisBehindLatest"] = json.RawMessage(strconv.FormatInt(backlog.Milliseconds(), 10))
	out, err := json.Marshal(answer) // raw values are copied as they are
	if err != nil {
		return nil
	}
	resp.Body = io.NopCloser(bytes.NewReader(out))
	resp.ContentLength = int64(len(out))
	resp.TransferEncoding = nil
	resp.Header.Set("Content-Length", strconv.Itoa(len(out)))
	p.mu.Lock()
	p.stats.Backlogged++
	p.mu.Unlock()
	return nil
}

// forwardError is the ReverseProxy's ErrorHandler.
func (p *Proxy) forwardError(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, errPartitioned):
		p.hold(w)
	case r.Context().Err() != nil: // Close, or the client is gone
		resetWriter(w)
	default: // the target failed: say so, as a gateway would
		p.mu.Lock()
		id := p.requestIDLocked()
		p.mu.Unlock()
		fake{http.StatusBadGateway, "BadGateway", "faultproxy: forwarding to the target: " + err.Error()}.
			write(w, p.service, id)
	}
}

// resetWriter resets the connection of a request that has not been answered.
func resetWriter(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(http.ErrAbortHandler) // the server closes the connection without answering
	}
	reset(conn)
}

// reset closes c with a TCP RST: SO_LINGER 0 discards unsent data and aborts the connection.
func reset(c net.Conn) {
	if tc, ok := c.(interface{ SetLinger(int) error }); ok {
		_ = tc.SetLinger(0)
	}
	_ = c.Close()
}

// sleep waits d; it returns false if ctx ends first.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
