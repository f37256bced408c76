package opscli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/smithy-go/logging"
)

// Environment variables read by the common flags.
const (
	envEndpoint = "KINESIS_ENDPOINT"
	envRegion   = "AWS_REGION"
	envCABundle = "AWS_CA_BUNDLE"
)

// defaultRegion is used when neither --region, AWS_REGION nor the shared config name a region.
const defaultRegion = "us-east-1"

// credentialsProbeTimeout bounds the look-up of the default credential chain when an endpoint
// is set (it may end at the EC2 metadata service, which can be slow to fail off EC2).
const credentialsProbeTimeout = 5 * time.Second

// kinesisAPI is the part of *kinesis.Client the sub-commands use.
type kinesisAPI interface {
	CreateStream(context.Context, *kinesis.CreateStreamInput, ...func(*kinesis.Options)) (*kinesis.CreateStreamOutput, error)
	DeleteStream(context.Context, *kinesis.DeleteStreamInput, ...func(*kinesis.Options)) (*kinesis.DeleteStreamOutput, error)
	DescribeStreamSummary(context.Context, *kinesis.DescribeStreamSummaryInput, ...func(*kinesis.Options)) (*kinesis.DescribeStreamSummaryOutput, error)
	ListShards(context.Context, *kinesis.ListShardsInput, ...func(*kinesis.Options)) (*kinesis.ListShardsOutput, error)
	GetShardIterator(context.Context, *kinesis.GetShardIteratorInput, ...func(*kinesis.Options)) (*kinesis.GetShardIteratorOutput, error)
	GetRecords(context.Context, *kinesis.GetRecordsInput, ...func(*kinesis.Options)) (*kinesis.GetRecordsOutput, error)
}

var _ kinesisAPI = (*kinesis.Client)(nil)

// connSettings are the resolved common flags.
type connSettings struct {
	endpoint string // "" means the AWS endpoint of the region
	region   string // "" means AWS_REGION, the shared config, then us-east-1
}

// newClient builds a Kinesis client for s. Warnings (such as an AWS_CA_BUNDLE that had to be
// ignored) go to warn.
func newClient(ctx context.Context, s connSettings, warn io.Writer) (*kinesis.Client, error) {
	plainHTTP := false
	if s.endpoint != "" {
		u, err := url.Parse(s.endpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("invalid endpoint %q: want a URL such as http://127.0.0.1:4567", s.endpoint)
		}
		plainHTTP = u.Scheme == "http"
	}

	opts := []func(*config.LoadOptions) error{
		// The SDK's own log lines (such as the IMDSv1 fallback warning while looking for
		// credentials) are noise in a CLI's output; failures come back as errors.
		config.WithLogger(logging.Nop{}),
	}
	if s.region != "" {
		opts = append(opts, config.WithRegion(s.region))
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		bundle, isCA := caBundleError(err)
		switch {
		case !isCA:
			return nil, fmt.Errorf("loading AWS config: %w", err)
		case !plainHTTP:
			return nil, fmt.Errorf("loading AWS config: the custom CA bundle %s cannot be used "+
				"(unset AWS_CA_BUNDLE or point it to a PEM file): %w", bundle, err)
		}
		// A CA bundle only matters for TLS: with a plain http endpoint, carry on without it.
		fmt.Fprintf(warn, "warning: ignoring the custom CA bundle %s (%v): endpoint %s is plain http\n",
			bundle, err, s.endpoint)
		cfg = fallbackConfig(s.region)
	}
	if cfg.Region == "" {
		cfg.Region = defaultRegion
	}

	if s.endpoint != "" {
		if cfg.Credentials == nil {
			cfg.Credentials = staticTestCredentials()
		} else {
			pctx, cancel := context.WithTimeout(ctx, credentialsProbeTimeout)
			_, err := cfg.Credentials.Retrieve(pctx)
			cancel()
			if err != nil {
				cfg.Credentials = staticTestCredentials()
			}
		}
	}

	return kinesis.NewFromConfig(cfg, func(o *kinesis.Options) {
		if s.endpoint != "" {
			o.BaseEndpoint = aws.String(s.endpoint)
		}
	}), nil
}

// caBundleError reports whether err, from config.LoadDefaultConfig, is about the custom CA
// bundle (a missing or unreadable file, or one without a PEM certificate), and names the bundle.
func caBundleError(err error) (bundle string, ok bool) {
	bundle = os.Getenv(envCABundle)
	var pe *fs.PathError
	if bundle != "" && errors.As(err, &pe) && pe.Path == bundle {
		return "AWS_CA_BUNDLE=" + bundle, true
	}
	if strings.Contains(err.Error(), "CA bundle") || strings.Contains(err.Error(), "RootCAs") {
		if bundle != "" {
			return "AWS_CA_BUNDLE=" + bundle, true
		}
		return "(ca_bundle of the shared config)", true
	}
	return "", false
}

// fallbackConfig is the configuration used when the default one cannot be loaded because of
// the CA bundle and the endpoint is plain http: credentials from the environment variables
// (else "test"/"test", see newClient), the region given (else AWS_REGION, else us-east-1).
func fallbackConfig(region string) aws.Config {
	if region == "" {
		region = os.Getenv(envRegion)
	}
	cfg := aws.Config{
		Region:     region,
		HTTPClient: &http.Client{Transport: http.DefaultTransport},
		Logger:     logging.Nop{},
	}
	if id, secret := os.Getenv("AWS_ACCESS_KEY_ID"), os.Getenv("AWS_SECRET_ACCESS_KEY"); id != "" && secret != "" {
		cfg.Credentials = aws.NewCredentialsCache(
			credentials.NewStaticCredentialsProvider(id, secret, os.Getenv("AWS_SESSION_TOKEN")))
	}
	return cfg
}

// staticTestCredentials are the credentials used with an endpoint when the default chain has
// none: local emulators accept anything.
func staticTestCredentials() aws.CredentialsProvider {
	return aws.NewCredentialsCache(credentials.NewStaticCredentialsProvider("test", "test", ""))
}
