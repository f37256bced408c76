package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/benthos-kinesis/benthos-kinesis/internal/kinesisfake"
)

// started is a run of the command in process, fed through pipes as a parent
// process would feed it.
type started struct {
	url    string
	stdin  *io.PipeWriter
	lines  *bufio.Scanner
	exited chan int
}

func start(t *testing.T, ctx context.Context, args ...string) *started {
	t.Helper()
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	s := &started{stdin: inW, lines: bufio.NewScanner(outR), exited: make(chan int, 1)}
	s.lines.Buffer(nil, 1<<20)
	var stderr strings.Builder
	go func() {
		code := run(ctx, args, inR, outW, &stderr)
		_ = outW.Close()
		s.exited <- code
	}()
	if !s.lines.Scan() {
		t.Fatalf("no URL printed; stderr: %s", stderr.String())
	}
	s.url = s.lines.Text()
	t.Cleanup(func() { _ = inW.Close() })
	return s
}

// stop closes stdin as a parent would and returns the Stats printed on exit.
func (s *started) stop(t *testing.T) kinesisfake.Stats {
	t.Helper()
	_ = s.stdin.Close()
	return s.stats(t)
}

func (s *started) stats(t *testing.T) kinesisfake.Stats {
	t.Helper()
	if !s.lines.Scan() {
		t.Fatal("no stats printed")
	}
	var st kinesisfake.Stats
	if err := json.Unmarshal(s.lines.Bytes(), &st); err != nil {
		t.Fatalf("stats %q: %v", s.lines.Text(), err)
	}
	select {
	case code := <-s.exited:
		if code != 0 {
			t.Fatalf("exit %d", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("did not exit")
	}
	return st
}

// put writes n records with one partition key (so one shard) and returns
// how many failed.
func put(t *testing.T, url string, n int) int32 {
	t.Helper()
	client := kinesis.New(kinesis.Options{
		Region:       kinesisfake.Region,
		BaseEndpoint: aws.String(url),
		Credentials:  credentials.NewStaticCredentialsProvider(kinesisfake.AccessKeyID, kinesisfake.SecretAccessKey, ""),
	})
	entries := make([]types.PutRecordsRequestEntry, n)
	for i := range entries {
		entries[i] = types.PutRecordsRequestEntry{Data: []byte("x"), PartitionKey: aws.String("k")}
	}
	out, err := client.PutRecords(context.Background(), &kinesis.PutRecordsInput{StreamName: aws.String("s"), Records: entries})
	if err != nil {
		t.Fatal(err)
	}
	return aws.ToInt32(out.FailedRecordCount)
}

func TestServesUntilStdinCloses(t *testing.T) {
	for _, c := range []struct {
		name      string
		args      []string
		throttled int64
	}{
		// A limit of 10 records/s throttles 10 of 20 records sent at once
		// (unless the 20 straddle a second boundary, hence the retry below).
		{"limited", []string{"-records-per-second", "10"}, 10},
		{"limits lifted", []string{"-write-limits=false", "-records-per-second", "10"}, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			for attempt := 0; ; attempt++ {
				s := start(t, context.Background(), append([]string{"-stream", "s", "-shards", "2"}, c.args...)...)
				if !strings.HasPrefix(s.url, "http://127.0.0.1:") {
					t.Fatalf("URL %q", s.url)
				}
				failed := put(t, s.url, 20)
				st := s.stop(t)
				sum := st.Stream("s")
				if sum.AcceptedRecords+sum.ThrottledRecords != 20 || int64(failed) != sum.ThrottledRecords {
					t.Fatalf("accepted %d, throttled %d, client saw %d failed", sum.AcceptedRecords, sum.ThrottledRecords, failed)
				}
				if st.Requests[kinesisfake.OpPutRecords] != 1 || len(st.Shards) != 2 {
					t.Fatalf("requests %v, shards %d", st.Requests, len(st.Shards))
				}
				if sum.ThrottledRecords == c.throttled {
					return
				}
				if attempt == 2 {
					t.Fatalf("throttled %d, want %d", sum.ThrottledRecords, c.throttled)
				}
			}
		})
	}
}

func TestStopsOnSignal(t *testing.T) {
	// The context stands in for SIGTERM: main cancels it on the signal.
	ctx, cancel := context.WithCancel(context.Background())
	s := start(t, ctx, "-discard")
	cancel()
	if st := s.stats(t); len(st.Shards) != 4 {
		t.Fatalf("default stream has %d shards", len(st.Shards))
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{{"-shards", "0"}, {"-nope"}, {"extra"}} {
		var stderr strings.Builder
		if code := run(context.Background(), args, strings.NewReader(""), io.Discard, &stderr); code != 2 {
			t.Errorf("%q: exit %d, want 2 (stderr %q)", args, code, stderr.String())
		}
	}
}
