package faultproxy

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	kinesistypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/benthos-kinesis/benthos-kinesis/internal/testenv"
)

// The read path's faults: GetRecords answers that report a backlog, and chosen AWS errors.

// getRecordsAnswer is a GetRecords answer with one record, as kinesalite writes it (at the tip).
const getRecordsAnswer = `{"MillisBehindLatest":0,"NextShardIterator":"AAAA/+==","Records":[{"ApproximateArrivalTimestamp":1.7652e9,"Data":"eA==","PartitionKey":"k","SequenceNumber":"49590338271490256608559692538361571095921575989136588898"}]}`

// TestBacklogRewritesAnswers pins the rewrite on the wire: only GetRecords answers with records
// change, only MillisBehindLatest changes in them (raw values byte for byte), Content-Length
// follows the new body, and the target is asked for an uncompressed answer.
func TestBacklogRewritesAnswers(t *testing.T) {
	answers := map[string]string{
		"Kinesis_20131202.GetRecords":         getRecordsAnswer,
		"Kinesis_20131202.ListShards":         `{"MillisBehindLatest":0,"Records":[{}]}`, // not GetRecords: untouched
		"Kinesis_20131202.GetRecords/tip":     `{"MillisBehindLatest":0,"NextShardIterator":"AAAA","Records":[]}`,
		"Kinesis_20131202.GetRecords/chunked": getRecordsAnswer,
	}
	encodings := make(chan string, 8)
	tg := target(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		encodings <- r.Header.Get("Accept-Encoding")
		key := r.Header.Get("X-Amz-Target") + r.URL.Query().Get("case")
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		if strings.HasSuffix(key, "/chunked") {
			w.(http.Flusher).Flush() // no Content-Length: chunked
		} else {
			w.Header().Set("Content-Length", strconv.Itoa(len(answers[key])))
		}
		_, _ = io.WriteString(w, answers[key])
	})
	p := start(t, Kinesis, tg.URL)
	c := &http.Client{Transport: &http.Transport{DisableCompression: true}}
	t.Cleanup(c.CloseIdleConnections)
	send := func(target, query string) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequestWithContext(callCtx(t), http.MethodPost, p.URL()+"/?case="+query, strings.NewReader("{}"))
		req.Header.Set("X-Amz-Target", target)
		req.Header.Set("Accept-Encoding", "gzip")
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp, string(b)
	}

	// Off: passed through as the target wrote it, compression asked as the client asked.
	if _, body := send("Kinesis_20131202.GetRecords", ""); body != getRecordsAnswer {
		t.Fatalf("Backlog off: body %s", body)
	}
	if enc := <-encodings; enc != "gzip" {
		t.Errorf("Backlog off: the target saw Accept-Encoding %q, want the client's gzip", enc)
	}

	p.SetFaults(Faults{Backlog: 5000_500_000}) // 5000.5 ms: whole milliseconds are reported
	for _, q := range []string{"", "/chunked"} {
		resp, body := send("Kinesis_20131202.GetRecords", q)
		if enc := <-encodings; enc != "identity" {
			t.Errorf("%q: the target saw Accept-Encoding %q, want identity", q, enc)
		}
		if cl := resp.Header.Get("Content-Length"); cl != strconv.Itoa(len(body)) {
			t.Errorf("%q: Content-Length %q for a body of %d bytes", q, cl, len(body))
		}
		var got, want map[string]json.RawMessage
		if err := json.Unmarshal([]byte(body), &got); err != nil {
			t.Fatalf("%q: rewritten body %s: %v", q, body, err)
		}
		_ = json.Unmarshal([]byte(getRecordsAnswer), &want)
		want["MillisBehindLatest"] = json.RawMessage("5000")
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%q: rewritten body %s, want %s", q, got, want)
		}
	}
	for _, tc := range []struct{ target, query string }{
		{"Kinesis_20131202.GetRecords", "/tip"}, // at the tip: no records, no backlog
		{"Kinesis_20131202.ListShards", ""},
	} {
		if _, body := send(tc.target, tc.query); body != answers[tc.target+tc.query] {
			t.Errorf("%s%s: body %s, want it unchanged", tc.target, tc.query, body)
		}
		<-encodings
	}
	if st := p.Stats(); st != (Stats{Forwarded: 5, Backlogged: 2}) {
		t.Errorf("Stats = %+v, want 5 forwarded, 2 backlogged", st)
	}
	if n := p.Requests("GetRecords"); n != 4 {
		t.Errorf("Requests(GetRecords) = %d, want 4", n)
	}
}

// TestBacklogThroughTheSDK reads a kinesalite shard through the proxy: the SDK parses the
// rewritten answer (records intact), and an empty answer at the tip still reports 0.
func TestBacklogThroughTheSDK(t *testing.T) {
	p := start(t, Kinesis, testenv.KinesaliteEndpoint(t))
	c := kinesisVia(t, p)
	stream := testenv.CreateStream(t, c, 1)
	p.SetFaults(Faults{Backlog: 5 * 1e9})
	for i := range 3 {
		if _, err := c.PutRecord(callCtx(t), &kinesis.PutRecordInput{
			StreamName: aws.String(stream), PartitionKey: aws.String("pk"), Data: []byte(strconv.Itoa(i)),
		}); err != nil {
			t.Fatal(err)
		}
	}
	it, err := c.GetShardIterator(callCtx(t), &kinesis.GetShardIteratorInput{
		StreamName: aws.String(stream), ShardId: aws.String("shardId-000000000000"),
		ShardIteratorType: kinesistypes.ShardIteratorTypeTrimHorizon,
	})
	if err != nil {
		t.Fatal(err)
	}
	out, err := c.GetRecords(callCtx(t), &kinesis.GetRecordsInput{ShardIterator: it.ShardIterator})
	if err != nil {
		t.Fatalf("GetRecords: %v", err)
	}
	if len(out.Records) != 3 || string(out.Records[2].Data) != "2" || aws.ToInt64(out.MillisBehindLatest) != 5000 {
		t.Fatalf("GetRecords: %d records, MillisBehindLatest %d; want 3 and 5000", len(out.Records), aws.ToInt64(out.MillisBehindLatest))
	}
	out, err = c.GetRecords(callCtx(t), &kinesis.GetRecordsInput{ShardIterator: out.NextShardIterator})
	if err != nil {
		t.Fatalf("GetRecords at the tip: %v", err)
	}
	if len(out.Records) != 0 || aws.ToInt64(out.MillisBehindLatest) != 0 {
		t.Fatalf("GetRecords at the tip: %d records, MillisBehindLatest %d; want 0 and 0", len(out.Records), aws.ToInt64(out.MillisBehindLatest))
	}
	if st := p.Stats(); st.Backlogged != 1 {
		t.Fatalf("Stats = %+v, want 1 backlogged", st)
	}
}

// TestChosenErrors checks that the SDK parses each chosen error of the read path as AWS's:
// modeled type, code, status, request ID, and whether its standard retryer retries it. The
// iterator is made up: a request forwarded by mistake would get kinesalite's own error.
func TestChosenErrors(t *testing.T) {
	isRetryable := func(err error) bool {
		return retry.IsErrorRetryables(retry.DefaultRetryables).IsErrorRetryable(err) == aws.TrueTernary
	}
	for _, tc := range []struct {
		code      string
		status    int // 0: the default
		want      int
		retryable bool
		modeled   func(error) bool
	}{
		{"KMSThrottlingException", 0, 400, false, func(err error) bool {
			var e *kinesistypes.KMSThrottlingException
			return errors.As(err, &e)
		}},
		{"KMSAccessDeniedException", 0, 400, false, func(err error) bool {
			var e *kinesistypes.KMSAccessDeniedException
			return errors.As(err, &e)
		}},
		{"KMSDisabledException", 0, 400, false, func(err error) bool {
			var e *kinesistypes.KMSDisabledException
			return errors.As(err, &e)
		}},
		{"ExpiredIteratorException", 0, 400, false, func(err error) bool {
			var e *kinesistypes.ExpiredIteratorException
			return errors.As(err, &e)
		}},
		{"ResourceNotFoundException", 0, 400, false, func(err error) bool {
			var e *kinesistypes.ResourceNotFoundException
			return errors.As(err, &e)
		}},
		{"InternalFailure", 0, 500, true, func(err error) bool { return true }},
		{"InternalFailure", 502, 502, true, func(err error) bool { return true }},
	} {
		t.Run(fmt.Sprintf("%s %d", tc.code, tc.want), func(t *testing.T) {
			t.Parallel()
			p := start(t, Kinesis, testenv.KinesaliteEndpoint(t))
			c := kinesisVia(t, p)
			p.SetFaults(Faults{ErrorRate: 1, ErrorCode: tc.code, ErrorStatus: tc.status, Operations: []string{"GetRecords"}})
			_, err := c.GetRecords(callCtx(t), &kinesis.GetRecordsInput{ShardIterator: aws.String("AAAAAAAAAAAAAAAA")})
			if err == nil {
				t.Fatal("GetRecords succeeded")
			}
			code, msg := apiError(t, err)
			if code != tc.code || httpStatus(t, err) != tc.want || !strings.HasSuffix(msg, injectedSuffix) {
				t.Errorf("error %v, want %d %s", err, tc.want, tc.code)
			}
			if !tc.modeled(err) {
				t.Errorf("error %v (%T) is not the modeled type", err, err)
			}
			if isRetryable(err) != tc.retryable {
				t.Errorf("the SDK retries %v: %v, want %v", err, !tc.retryable, tc.retryable)
			}
			if st := p.Stats(); st != (Stats{Errors: 1}) {
				t.Errorf("Stats = %+v, want 1 error", st)
			}
		})
	}
}

// TestErrorRateFraction checks that ErrorRate answers its share of requests, after the other
// rates in the same draw, reproducibly.
func TestErrorRateFraction(t *testing.T) {
	p := start(t, Kinesis, target(t, nil).URL)
	c := &http.Client{Transport: transport(t)}
	const n = 200
	run := func() string {
		p.SetFaults(Faults{ServerErrorRate: 0.2, ErrorRate: 0.3, ErrorCode: "KMSDisabledException", Seed: 9})
		var seq strings.Builder
		for range n {
			resp, _, err := post(callCtx(t), c, p.URL(), "Kinesis_20131202.GetRecords", "{}")
			switch {
			case err != nil:
				t.Fatal(err)
			case resp.StatusCode == 200:
				seq.WriteByte('.')
			case resp.StatusCode == 400 && resp.Header.Get("X-Amzn-ErrorType") == "KMSDisabledException":
				seq.WriteByte('K')
			case resp.StatusCode >= 500:
				seq.WriteByte('5')
			default:
				t.Fatalf("answer %d %v", resp.StatusCode, resp.Header)
			}
		}
		return seq.String()
	}
	first := run()
	k := strings.Count(first, "K")
	if k < n*3/10/2 || k > n*3/10*3/2 {
		t.Errorf("%d of %d answered KMSDisabledException, want about %d", k, n, n*3/10)
	}
	if st := p.Stats(); st.Errors != k || st.ServerErrors != strings.Count(first, "5") {
		t.Errorf("Stats = %+v do not match %s", st, first)
	}
	if again := run(); again != first {
		t.Errorf("same seed, other sequence:\n%s\n%s", first, again)
	}
}
