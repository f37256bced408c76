package awssession

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/redpanda-data/benthos/v4/public/service"
)

// kinesisServer answers every call with the given statuses in turn (the last one repeats): 200
// with an empty JSON object, anything else with a Kinesis error.
func kinesisServer(t *testing.T, statuses ...int) *httptest.Server {
	t.Helper()
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		i := min(int(n.Add(1))-1, len(statuses)-1)
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		switch statuses[i] {
		case http.StatusOK:
			_, _ = w.Write([]byte(`{}`))
		case http.StatusBadRequest:
			w.Header().Set("X-Amzn-Errortype", "ResourceNotFoundException")
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write([]byte(`{"__type":"ResourceNotFoundException","message":"no such stream"}`))
		default:
			w.WriteHeader(statuses[i])
			_, _ = w.Write([]byte(`{"__type":"InternalFailure","message":"try again"}`))
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

func sessionFor(t *testing.T, endpoint string) Session {
	t.Helper()
	pConf, err := service.NewConfigSpec().Fields(Fields()...).ParseYAML(fmt.Sprintf(`
endpoint: %s
region: eu-west-1
credentials: {id: x, secret: y}
`, endpoint), nil)
	if err != nil {
		t.Fatal(err)
	}
	sess, err := FromParsed(context.Background(), pConf)
	if err != nil {
		t.Fatal(err)
	}
	return sess
}

// callLog is a recorder for RecordOperations.
type callLog struct {
	mu    sync.Mutex
	calls []Call
}

func (l *callLog) add(c Call) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.calls = append(l.calls, c)
}

func TestRecordOperations(t *testing.T) {
	cases := []struct {
		name     string
		statuses []int
		wantErr  bool
	}{
		{name: "answered", statuses: []int{200}},
		{name: "retried once: one call", statuses: []int{500, 200}},
		{name: "failed: recorded with its error", statuses: []int{400}, wantErr: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var log callLog
			RecordOperations(log.add)
			t.Cleanup(func() { RecordOperations(nil) })
			srv := kinesisServer(t, tc.statuses...)
			c := kinesis.NewFromConfig(sessionFor(t, srv.URL).Config)
			_, err := c.DescribeStreamSummary(t.Context(), &kinesis.DescribeStreamSummaryInput{StreamName: aws.String("s")})
			if (err != nil) != tc.wantErr {
				t.Fatalf("call error %v, want an error: %v", err, tc.wantErr)
			}
			if len(log.calls) != 1 {
				t.Fatalf("recorded %+v, want one call", log.calls)
			}
			got := log.calls[0]
			if got.Service != "Kinesis" || got.Operation != "DescribeStreamSummary" || (got.Err != nil) != tc.wantErr {
				t.Fatalf("recorded %+v, want Kinesis DescribeStreamSummary with an error: %v", got, tc.wantErr)
			}
		})
	}
}

// Without a recorder, FromParsed adds nothing to the clients: production behaviour is unchanged.
// A recorder set after a Session was made does not reach it, and nil stops the recording.
func TestRecordOperationsOffByDefault(t *testing.T) {
	srv := kinesisServer(t, 200)
	plain := sessionFor(t, srv.URL)

	var log callLog
	RecordOperations(log.add)
	t.Cleanup(func() { RecordOperations(nil) })
	recorded := sessionFor(t, srv.URL)
	RecordOperations(nil)
	after := sessionFor(t, srv.URL)

	if len(recorded.Config.APIOptions) != len(plain.Config.APIOptions)+1 || len(after.Config.APIOptions) != len(plain.Config.APIOptions) {
		t.Fatalf("APIOptions: %d without a recorder, %d with, %d after it was removed; want n, n+1, n",
			len(plain.Config.APIOptions), len(recorded.Config.APIOptions), len(after.Config.APIOptions))
	}
	for _, s := range []Session{plain, after} {
		if _, err := kinesis.NewFromConfig(s.Config).ListShards(t.Context(), &kinesis.ListShardsInput{StreamName: aws.String("s")}); err != nil {
			t.Fatal(err)
		}
	}
	if len(log.calls) != 0 {
		t.Fatalf("recorded %+v from sessions made without a recorder", log.calls)
	}
}
