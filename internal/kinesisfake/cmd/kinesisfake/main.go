// Command kinesisfake serves internal/kinesisfake over HTTP on a loopback
// address, so that a benchmark can run the fake in a process of its own and
// count only its own CPU (getrusage RUSAGE_SELF) rather than the fake's too.
//
// It prints the endpoint URL (e.g. http://127.0.0.1:41234) as the first line
// on stdout once it is listening. It stops when stdin reaches end of file or
// on SIGTERM/SIGINT; it then prints the fake's Stats as one line of JSON on
// stdout and exits 0. Stopping on end of stdin means a parent that dies,
// even by kill -9, takes the fake with it: its end of the pipe closes.
//
// Usage:
//
//	kinesisfake [-addr 127.0.0.1:0] [-stream name] [-shards 4]
//	            [-write-limits=true] [-records-per-second 1000]
//	            [-bytes-per-second 1048576] [-token-bucket] [-discard]
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/benthos-kinesis/benthos-kinesis/internal/kinesisfake"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// run is main without the process: the command's test drives it in process.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("kinesisfake", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:0", "address to listen on (port 0 picks a free one)")
	stream := fs.String("stream", "stream", "name of the stream created up front (empty for none)")
	shards := fs.Int("shards", 4, "shards of that stream")
	writeLimits := fs.Bool("write-limits", true, "enforce the per-shard write limits (false lifts them)")
	records := fs.Int("records-per-second", kinesisfake.DefaultShardWriteRecords, "per-shard write limit in records/s")
	bytes := fs.Int("bytes-per-second", kinesisfake.DefaultShardWriteBytes, "per-shard write limit in bytes/s (data plus partition key)")
	tokenBucket := fs.Bool("token-bucket", false, "count the limits in token buckets instead of aligned one-second windows")
	discard := fs.Bool("discard", false, "keep no record payloads (for long write benchmarks)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "kinesisfake: unexpected arguments %q\n", fs.Args())
		return 2
	}

	var opts []kinesisfake.Option
	if *stream != "" {
		opts = append(opts, kinesisfake.WithStream(*stream, *shards))
	}
	if *writeLimits {
		opts = append(opts, kinesisfake.WithShardWriteLimits(*records, *bytes))
	} else {
		opts = append(opts, kinesisfake.WithoutWriteLimits())
	}
	if *tokenBucket {
		opts = append(opts, kinesisfake.WithTokenBucket())
	}
	if *discard {
		opts = append(opts, kinesisfake.WithDiscardData())
	}
	f, err := newFake(opts)
	if err != nil {
		fmt.Fprintf(stderr, "kinesisfake: %v\n", err)
		return 2
	}

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintf(stderr, "kinesisfake: %v\n", err)
		return 1
	}
	srv := &http.Server{Handler: f, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	// The URL goes out only after Listen: a reader of the first line can
	// connect at once.
	fmt.Fprintf(stdout, "http://%s\n", ln.Addr())

	stdinClosed := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, stdin)
		close(stdinClosed)
	}()
	exit := 0
	select {
	case <-ctx.Done():
	case <-stdinClosed:
	case err := <-served:
		fmt.Fprintf(stderr, "kinesisfake: serve: %v\n", err)
		exit = 1
	}

	// Let requests in flight finish so that the Stats printed below are
	// final, but do not hang on a client that keeps a request open.
	shutCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutCtx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintf(stderr, "kinesisfake: shutdown: %v\n", err)
	}
	if err := json.NewEncoder(stdout).Encode(f.Stats()); err != nil {
		fmt.Fprintf(stderr, "kinesisfake: stats: %v\n", err)
		exit = 1
	}
	return exit
}

// newFake turns kinesisfake.New's panic on a bad stream spec (e.g. -shards 0)
// into an error, so the command reports it as a usage error.
func newFake(opts []kinesisfake.Option) (f *kinesisfake.Fake, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%v", r)
		}
	}()
	return kinesisfake.New(opts...), nil
}
