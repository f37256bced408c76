package testenv

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
)

// kinesalite and dynalite throw the request's 'error' event ("Error: aborted", ECONNRESET) when a
// client disconnects before the request body is complete, which kills the process. The
// resources/emulators/loopback.js preload catches exactly that. These tests abort requests
// mid-body against the shared emulators and check they survive; TestCrashGuardIsNeeded shows,
// on private instances, that the unguarded emulators die of the same aborts.

// crashTarget is an emulator that needed the guard.
type crashTarget struct {
	name   string
	target string // X-Amz-Target of the aborted request
	ctype  string
	alive  func(ctx context.Context, endpoint string) error
	// cancelMidBody starts a large request with the SDK, its context cancelled mid-body.
	cancelMidBody func(ctx context.Context, endpoint string, o clientTweak) error
}

type clientTweak struct {
	httpClient *http.Client
}

var crashTargets = []crashTarget{
	{
		name:   "kinesalite",
		target: "Kinesis_20131202.PutRecords",
		ctype:  "application/x-amz-json-1.1",
		alive: func(ctx context.Context, ep string) error {
			_, err := NewKinesisClient(ep, noRetry).ListStreams(ctx, &kinesis.ListStreamsInput{})
			return err
		},
		cancelMidBody: func(ctx context.Context, ep string, tw clientTweak) error {
			c := NewKinesisClient(ep, noRetry, func(o *kinesis.Options) { o.HTTPClient = tw.httpClient })
			recs := make([]types.PutRecordsRequestEntry, 500)
			for i := range recs {
				recs[i] = types.PutRecordsRequestEntry{
					Data:         bytes.Repeat([]byte{'x'}, 2048),
					PartitionKey: aws.String(fmt.Sprint(i)),
				}
			}
			_, err := c.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String("no-such-stream"), Records: recs})
			return err
		},
	},
	{
		name:   "dynalite",
		target: "DynamoDB_20120810.PutItem",
		ctype:  "application/x-amz-json-1.0",
		alive: func(ctx context.Context, ep string) error {
			_, err := NewDynamoDBClient(ep, noRetryDDB).ListTables(ctx, &dynamodb.ListTablesInput{})
			return err
		},
		cancelMidBody: func(ctx context.Context, ep string, tw clientTweak) error {
			c := NewDynamoDBClient(ep, noRetryDDB, func(o *dynamodb.Options) { o.HTTPClient = tw.httpClient })
			_, err := c.PutItem(ctx, &dynamodb.PutItemInput{
				TableName: aws.String("no-such-table"),
				Item: map[string]ddbtypes.AttributeValue{
					"StreamID": &ddbtypes.AttributeValueMemberS{Value: "s"},
					"Blob":     &ddbtypes.AttributeValueMemberS{Value: strings.Repeat("x", 300<<10)},
				},
			})
			return err
		},
	},
}

func noRetry(o *kinesis.Options) {
	o.Retryer = retry.NewStandard(func(o *retry.StandardOptions) { o.MaxAttempts = 1 })
}

func noRetryDDB(o *dynamodb.Options) {
	o.Retryer = retry.NewStandard(func(o *retry.StandardOptions) { o.MaxAttempts = 1 })
}

// aborts are the ways a client gives up on a request mid-body.
var aborts = []struct {
	name string
	do   func(t *testing.T, ct crashTarget, endpoint string)
}{
	{"raw TCP close mid-body", func(t *testing.T, ct crashTarget, ep string) {
		abortMidBody(t, hostPort(t, ep), ct, false)
	}},
	{"raw TCP reset mid-body", func(t *testing.T, ct crashTarget, ep string) {
		abortMidBody(t, hostPort(t, ep), ct, true)
	}},
	{"SDK context cancelled mid-body", func(t *testing.T, ct crashTarget, ep string) {
		err := ct.cancelMidBody(t.Context(), ep, clientTweak{httpClient: cancellingClient()})
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("request error = %v, want context.Canceled (the body must not have been sent whole)", err)
		}
	}},
}

func TestCrashGuard(t *testing.T) {
	endpoints := map[string]func(testing.TB) string{
		"kinesalite": KinesaliteEndpoint,
		"dynalite":   DynamoDBEndpoint,
	}
	for _, ct := range crashTargets {
		t.Run(ct.name, func(t *testing.T) {
			ep := endpoints[ct.name](t)
			assertAlive(t, ct, ep, nil)
			for _, ab := range aborts {
				t.Run(ab.name, func(t *testing.T) {
					ab.do(t, ct, ep)
					assertAlive(t, ct, ep, nil)
				})
			}
		})
	}
}

// abortMidBody sends a request whose Content-Length promises 1 MiB, waits until the server has
// parsed the headers (it answers "100 Continue" only then), sends a few bytes of body and closes
// the connection, with a FIN or, when reset is set, an RST.
func abortMidBody(t *testing.T, addr string, ct crashTarget, reset bool) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	_, err = fmt.Fprintf(conn, "POST / HTTP/1.1\r\nHost: %s\r\nX-Amz-Target: %s\r\nContent-Type: %s\r\n"+
		"X-Amz-Date: 20200101T000000Z\r\n"+
		"Authorization: AWS4-HMAC-SHA256 Credential=test/20200101/us-east-1/x/aws4_request, SignedHeaders=host, Signature=00\r\n"+
		"Expect: 100-continue\r\nContent-Length: 1048576\r\n\r\n", addr, ct.target, ct.ctype)
	if err != nil {
		t.Fatal(err)
	}
	status, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil || !strings.HasPrefix(status, "HTTP/1.1 100") {
		t.Fatalf("want 100 Continue before the body, got %q, %v", status, err)
	}
	if _, err := io.WriteString(conn, `{"StreamName":"x","Records":[{"Data":"eA==","Part`); err != nil {
		t.Fatal(err)
	}
	if reset {
		if err := conn.(*net.TCPConn).SetLinger(0); err != nil {
			t.Fatal(err)
		}
	}
	if err := conn.Close(); err != nil {
		t.Fatal(err)
	}
}

// cancellingClient returns an HTTP client whose requests send the first 64 KiB of their body,
// then cancel their own context: the transport gives up mid-body and closes the connection, as
// it does when a test's context is cancelled during a large request.
func cancellingClient() *http.Client {
	base := &http.Transport{DisableKeepAlives: true}
	return &http.Client{Transport: roundTripFunc(func(req *http.Request) (*http.Response, error) {
		ctx, cancel := context.WithCancel(req.Context())
		defer cancel()
		req = req.WithContext(ctx)
		if req.ContentLength < 128<<10 {
			return nil, fmt.Errorf("body of %d bytes is too small to abort mid-way", req.ContentLength)
		}
		req.Body = &cancelAfter{r: req.Body, n: 64 << 10, ctx: ctx, cancel: cancel}
		resp, err := base.RoundTrip(req)
		if err != nil && ctx.Err() != nil {
			return nil, context.Canceled
		}
		return resp, err
	})}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

type cancelAfter struct {
	r      io.ReadCloser
	n      int
	ctx    context.Context
	cancel context.CancelFunc
}

func (c *cancelAfter) Read(p []byte) (int, error) {
	if c.n <= 0 {
		c.cancel()
		<-c.ctx.Done()
		return 0, c.ctx.Err()
	}
	if len(p) > c.n {
		p = p[:c.n]
	}
	n, err := c.r.Read(p)
	c.n -= n
	return n, err
}

func (c *cancelAfter) Close() error { return c.r.Close() }

// assertAlive checks that the emulator keeps answering for a while: a crash caused by an abort
// happens within milliseconds of the server seeing the connection close. exited, when given,
// must not be closed (the private server process must still run).
func assertAlive(t *testing.T, ct crashTarget, ep string, exited <-chan struct{}) {
	t.Helper()
	for i := range 8 {
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		err := ct.alive(ctx, ep)
		cancel()
		if err != nil {
			t.Fatalf("%s no longer answers (check %d after the abort): %v", ct.name, i+1, err)
		}
		select {
		case <-exited: // a nil channel never is
			t.Fatalf("%s exited", ct.name)
		default:
		}
		if err := sleep(t.Context(), 50*time.Millisecond); err != nil {
			t.Fatal(err)
		}
	}
}

func hostPort(t *testing.T, endpoint string) string {
	t.Helper()
	u, err := url.Parse(endpoint)
	if err != nil || u.Host == "" {
		t.Fatalf("bad endpoint %q: %v", endpoint, err)
	}
	return u.Host
}

// TestCrashGuardIsNeeded starts private kinesalite and dynalite servers on ephemeral loopback
// ports, without and with the loopback.js preload, and aborts a request mid-body: the
// unguarded server dies of "Error: aborted" (ECONNRESET), the guarded one logs a line and keeps
// answering. It needs node and resources/emulators/node_modules (`make emulators-up` installs
// them).
func TestCrashGuardIsNeeded(t *testing.T) {
	emuDir := emulatorsDir(t)
	for _, ct := range crashTargets {
		for _, ab := range aborts {
			t.Run(ct.name+" unguarded dies of "+ab.name, func(t *testing.T) {
				t.Parallel()
				srv := startPrivate(t, emuDir, ct.name, false)
				assertAlive(t, ct, srv.endpoint, srv.exited)
				ab.do(t, ct, srv.endpoint)
				select {
				case <-srv.exited:
				case <-time.After(10 * time.Second):
					t.Fatalf("unguarded %s survived; stderr:\n%s", ct.name, srv.stderr.String())
				}
				if srv.cmd.ProcessState.Success() {
					t.Fatalf("unguarded %s exited cleanly", ct.name)
				}
				if s := srv.stderr.String(); !strings.Contains(s, "Error: aborted") || !strings.Contains(s, "ECONNRESET") {
					t.Fatalf("unguarded %s died of something else:\n%s", ct.name, s)
				}
			})
		}
		t.Run(ct.name+" guarded survives them all", func(t *testing.T) {
			t.Parallel()
			srv := startPrivate(t, emuDir, ct.name, true)
			assertAlive(t, ct, srv.endpoint, srv.exited)
			for _, ab := range aborts {
				ab.do(t, ct, srv.endpoint)
				assertAlive(t, ct, srv.endpoint, srv.exited)
			}
			if got := strings.Count(srv.stderr.String(), "client disconnected mid-request"); got != len(aborts) {
				t.Fatalf("guarded %s logged %d aborts, want %d; stderr:\n%s", ct.name, got, len(aborts), srv.stderr.String())
			}
		})
	}
}

type privateServer struct {
	cmd      *exec.Cmd
	endpoint string
	stderr   *syncBuffer
	exited   chan struct{}
}

// startPrivate runs the emulator's library in node on an ephemeral port of 127.0.0.1.
func startPrivate(t *testing.T, emuDir, name string, guarded bool) *privateServer {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		unavailableTool(t, "node is not installed")
	}
	lib := filepath.Join(emuDir, "node_modules", name)
	if _, err := os.Stat(filepath.Join(lib, "package.json")); err != nil {
		unavailableTool(t, fmt.Sprintf("%s is not installed in %s", name, emuDir))
	}
	const script = `const s = require(process.argv[1])({});
s.listen(0, '127.0.0.1', () => console.log('PORT ' + s.address().port));`
	args := []string{"-e", script, lib}
	if guarded {
		args = append([]string{"-r", filepath.Join(emuDir, "loopback.js")}, args...)
	}
	cmd := exec.Command(node, args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	srv := &privateServer{cmd: cmd, stderr: &syncBuffer{}, exited: make(chan struct{})}
	cmd.Stderr = srv.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	portc := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if p, ok := strings.CutPrefix(sc.Text(), "PORT "); ok {
				portc <- p
			}
		}
		// Wait only after stdout is drained (exec.Cmd's rule for StdoutPipe).
		_ = cmd.Wait()
		close(srv.exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-srv.exited
	})
	select {
	case p := <-portc:
		srv.endpoint = "http://127.0.0.1:" + p
	case <-srv.exited:
		t.Fatalf("%s exited at startup: %v\n%s", name, cmd.ProcessState, srv.stderr.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("%s did not start within 30 s\n%s", name, srv.stderr.String())
	}
	return srv
}

// emulatorsDir is <module root>/resources/emulators.
func emulatorsDir(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, "resources", "emulators")
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the working directory")
		}
		dir = parent
	}
}

// unavailableTool skips, or fails under CI=true, like a missing emulator.
func unavailableTool(t *testing.T, why string) {
	t.Helper()
	msg := fmt.Sprintf("testenv: %s; %s", why, startHint)
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
