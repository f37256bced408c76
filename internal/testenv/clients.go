package testenv

import (
	"github.com/benthos-kinesis/benthos-kinesis/internal/awssession"

	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
)

// Region and static credentials of every client this package builds.
const (
	Region          = "us-east-1"
	AccessKeyID     = "test"
	SecretAccessKey = "test"
)

// checkTimeout bounds the reachability check of one emulator.
const checkTimeout = 5 * time.Second

// KinesaliteEndpoint returns the kinesalite endpoint (KINESIS_ENDPOINT), checked to answer; it
// skips the test (fails it under CI=true) when kinesalite is not available.
func KinesaliteEndpoint(t testing.TB) string {
	t.Helper()
	return endpoint(t, kinesalite)
}

// KinesisMockEndpoint returns the kinesis-local endpoint (KINESIS_MOCK_ENDPOINT), checked to
// answer; it skips the test (fails it under CI=true) when kinesis-local is not available.
func KinesisMockEndpoint(t testing.TB) string {
	t.Helper()
	return endpoint(t, kinesisMock)
}

// DynamoDBEndpoint returns the dynalite endpoint (DYNAMODB_ENDPOINT), checked to answer; it skips
// the test (fails it under CI=true) when dynalite is not available.
func DynamoDBEndpoint(t testing.TB) string {
	t.Helper()
	return endpoint(t, dynalite)
}

// Kinesalite returns a Kinesis client for kinesalite (fast; no UpdateShardCount, no ChildShards,
// no StreamARN). optFns are applied last, e.g. to wrap o.HTTPClient.
func Kinesalite(t testing.TB, optFns ...func(*kinesis.Options)) *kinesis.Client {
	t.Helper()
	return NewKinesisClient(KinesaliteEndpoint(t), optFns...)
}

// KinesisMock returns a Kinesis client for kinesis-local (kinesis-mock: UpdateShardCount,
// ChildShards, ARNs; slow with many records per shard). optFns are applied last.
func KinesisMock(t testing.TB, optFns ...func(*kinesis.Options)) *kinesis.Client {
	t.Helper()
	return NewKinesisClient(KinesisMockEndpoint(t), optFns...)
}

// DynamoDB returns a DynamoDB client for dynalite. optFns are applied last.
func DynamoDB(t testing.TB, optFns ...func(*dynamodb.Options)) *dynamodb.Client {
	t.Helper()
	return NewDynamoDBClient(DynamoDBEndpoint(t), optFns...)
}

// NewKinesisClient returns a Kinesis client for a local endpoint (an emulator, or a proxy in front
// of one) with this package's settings, without checking that anything answers there.
func NewKinesisClient(endpoint string, optFns ...func(*kinesis.Options)) *kinesis.Client {
	return kinesis.New(kinesis.Options{
		Region:       Region,
		BaseEndpoint: aws.String(endpoint),
		Credentials:  credentials.NewStaticCredentialsProvider(AccessKeyID, SecretAccessKey, ""),
		HTTPClient:   awssession.ReadOnlyBodies(httpClient()),
		Retryer:      NewRetryer(),
	}, optFns...)
}

// NewDynamoDBClient returns a DynamoDB client for a local endpoint with this package's settings,
// without checking that anything answers there.
func NewDynamoDBClient(endpoint string, optFns ...func(*dynamodb.Options)) *dynamodb.Client {
	return dynamodb.New(dynamodb.Options{
		Region:                Region,
		BaseEndpoint:          aws.String(endpoint),
		Credentials:           credentials.NewStaticCredentialsProvider(AccessKeyID, SecretAccessKey, ""),
		HTTPClient:            awssession.ReadOnlyBodies(httpClient()),
		Retryer:               NewRetryer(),
		AccountIDEndpointMode: aws.AccountIDEndpointModeDisabled,
	}, optFns...)
}

// NewRetryer returns the retryer the clients use: a local server answers in milliseconds and
// never throttles, so 3 attempts with a short backoff, and no client-side retry quota (which
// would otherwise run dry when many tests see errors on purpose).
func NewRetryer() aws.Retryer {
	return retry.NewStandard(func(o *retry.StandardOptions) {
		o.MaxAttempts = 3
		o.MaxBackoff = 200 * time.Millisecond
		o.RateLimiter = ratelimit.None
	})
}

// httpClient is shared by all clients of the process, so connections to the emulators are
// reused across tests. Plain HTTP to loopback: no proxy (Go never proxies loopback), no CA bundle.
var httpClient = sync.OnceValue(func() *http.Client {
	return &http.Client{Transport: &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 2 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:          256,
		MaxIdleConnsPerHost:   64,
		IdleConnTimeout:       30 * time.Second,
		ResponseHeaderTimeout: 60 * time.Second, // kinesis-local can take seconds on a full shard
		ExpectContinueTimeout: time.Second,
	}}
})

// endpoint resolves e's endpoint and checks once per process that it answers; otherwise it skips
// t, or fails it under CI=true.
func endpoint(t testing.TB, e emulator) string {
	t.Helper()
	ep, err := lookupEndpoint(e, os.Getenv, loadEnvFile())
	if err == nil {
		err = check(e, ep)
	}
	if err != nil {
		msg := fmt.Sprintf("testenv: %s is not available: %v; %s", e.name, err, startHint)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return ep
}

type checkResult struct {
	once sync.Once
	err  error
}

var (
	checksMu sync.Mutex
	checks   = map[string]*checkResult{}
)

// check reports whether ep answers e's cheap API call; done once per emulator and endpoint.
func check(e emulator, ep string) error {
	checksMu.Lock()
	key := e.envVar + " " + ep
	c, ok := checks[key]
	if !ok {
		c = &checkResult{}
		checks[key] = c
	}
	checksMu.Unlock()
	c.once.Do(func() { c.err = probe(e, ep) })
	return c.err
}

func probe(e emulator, ep string) error {
	u, err := url.Parse(ep)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%s=%q is not an http(s)://host:port URL", e.envVar, ep)
	}
	ctx, cancel := context.WithTimeout(context.Background(), checkTimeout)
	defer cancel()
	once := func(o *retry.StandardOptions) { o.MaxAttempts = 1 }
	if e == dynalite {
		c := NewDynamoDBClient(ep, func(o *dynamodb.Options) { o.Retryer = retry.NewStandard(once) })
		_, err = c.ListTables(ctx, &dynamodb.ListTablesInput{Limit: aws.Int32(1)})
	} else {
		c := NewKinesisClient(ep, func(o *kinesis.Options) { o.Retryer = retry.NewStandard(once) })
		_, err = c.ListStreams(ctx, &kinesis.ListStreamsInput{Limit: aws.Int32(1)})
	}
	if err != nil {
		return fmt.Errorf("%s=%s does not answer: %w", e.envVar, ep, err)
	}
	return nil
}
