package opscli

import (
	"cmp"
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
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go/logging"

	"github.com/benthos-kinesis/benthos-kinesis/checkpointer"
)

// Environment variables read by the common settings. The endpoint variables are the SDK's own
// (config.LoadDefaultConfig and the clients' NewFromConfig read them; this package reads them
// only to say which endpoint is in use and to warn about a plain http one without credentials).
const (
	envRegion           = "AWS_REGION"
	envCABundle         = "AWS_CA_BUNDLE"
	envEndpointURL      = "AWS_ENDPOINT_URL"
	envKinesisURL       = "AWS_ENDPOINT_URL_KINESIS"
	envDynamoDBURL      = "AWS_ENDPOINT_URL_DYNAMODB"
	envAccessKeyID      = "AWS_ACCESS_KEY_ID"
	envSecretAccessKey  = "AWS_SECRET_ACCESS_KEY"
	envSessionToken     = "AWS_SESSION_TOKEN"
	envDeprecatedKin    = "KINESIS_ENDPOINT"  // deprecated: AWS_ENDPOINT_URL_KINESIS
	envDeprecatedDynamo = "DYNAMODB_ENDPOINT" // deprecated: AWS_ENDPOINT_URL_DYNAMODB
)

// defaultRegion is used when neither --region, AWS_REGION nor the shared config name a region.
const defaultRegion = "us-east-1"

// credentialsProbeTimeout bounds the look-up of the credentials before the first call (the
// default chain may end at the EC2 metadata service, which can be slow to fail off EC2).
const credentialsProbeTimeout = 10 * time.Second

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

// dynamoAPI is the part of *dynamodb.Client the lease sub-commands use: the lease table's
// (checkpointer.API) and a Scan of a KCL lease table.
type dynamoAPI interface {
	checkpointer.API
	Scan(context.Context, *dynamodb.ScanInput, ...func(*dynamodb.Options)) (*dynamodb.ScanOutput, error)
}

var _ dynamoAPI = (*dynamodb.Client)(nil)

// connSettings are the resolved common flags: the components' AWS settings (region, endpoint,
// credentials.profile, credentials.role, credentials.role_external_id). Empty means the SDK's
// default: its environment variables and shared config.
type connSettings struct {
	region           string
	profile          string
	role             string
	roleExternalID   string
	kinesisEndpoint  string // --kinesis-endpoint (alias --endpoint)
	dynamodbEndpoint string // --dynamodb-endpoint
}

// clients builds the service clients of one command.
type clients struct {
	cfg      aws.Config
	settings connSettings
	warn     io.Writer
}

// newClients loads the AWS configuration for s and checks that credentials can be found, so
// that a command never reaches a service without them (nor with made-up ones). Warnings (an
// AWS_CA_BUNDLE that had to be ignored, a deprecated variable) go to warn.
func newClients(ctx context.Context, s connSettings, warn io.Writer) (*clients, error) {
	s = withDeprecatedEndpoints(s, warn)
	// A CA bundle only matters for TLS: it may be ignored when every endpoint set is plain http.
	plainHTTP, anyEndpoint := true, false
	for _, ep := range []struct{ flag, value string }{
		{"--kinesis-endpoint", s.kinesisEndpoint}, {"--dynamodb-endpoint", s.dynamodbEndpoint},
		{"$" + envKinesisURL, os.Getenv(envKinesisURL)}, {"$" + envDynamoDBURL, os.Getenv(envDynamoDBURL)},
		{"$" + envEndpointURL, os.Getenv(envEndpointURL)},
	} {
		if ep.value == "" {
			continue
		}
		u, err := url.Parse(ep.value)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("invalid endpoint %q (%s): want a URL such as http://127.0.0.1:4567", ep.value, ep.flag)
		}
		anyEndpoint = true
		plainHTTP = plainHTTP && u.Scheme == "http"
	}
	plainHTTP = plainHTTP && anyEndpoint

	opts := []func(*config.LoadOptions) error{
		// The SDK's own log lines (such as the IMDSv1 fallback warning while looking for
		// credentials) are noise in a CLI's output; failures come back as errors.
		config.WithLogger(logging.Nop{}),
	}
	if s.region != "" {
		opts = append(opts, config.WithRegion(s.region))
	}
	if s.profile != "" {
		opts = append(opts, config.WithSharedConfigProfile(s.profile))
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
		fmt.Fprintf(warn, "warning: ignoring the custom CA bundle %s (%v): the endpoint is plain http\n", bundle, err)
		cfg = fallbackConfig(s.region)
		// Without the loaded config the clients do not see the SDK's endpoint variables.
		for _, ep := range []struct {
			cur *string
			env string
		}{{&s.kinesisEndpoint, envKinesisURL}, {&s.dynamodbEndpoint, envDynamoDBURL}} {
			if *ep.cur == "" {
				*ep.cur = cmp.Or(os.Getenv(ep.env), os.Getenv(envEndpointURL))
			}
		}
	}
	if cfg.Region == "" {
		cfg.Region = defaultRegion
	}
	if s.role != "" {
		var stsOpts []func(*stscreds.AssumeRoleOptions)
		if s.roleExternalID != "" {
			stsOpts = append(stsOpts, func(o *stscreds.AssumeRoleOptions) { o.ExternalID = aws.String(s.roleExternalID) })
		}
		cfg.Credentials = aws.NewCredentialsCache(stscreds.NewAssumeRoleProvider(sts.NewFromConfig(cfg), s.role, stsOpts...))
	} else if s.roleExternalID != "" {
		return nil, errors.New("--role-external-id needs --role")
	}
	if err := checkCredentials(ctx, cfg, s); err != nil {
		return nil, err
	}
	return &clients{cfg: cfg, settings: s, warn: warn}, nil
}

// withDeprecatedEndpoints applies KINESIS_ENDPOINT and DYNAMODB_ENDPOINT, the variables of the
// first releases, when neither the flag nor one of the SDK's variables names an endpoint, with a
// warning: they are read for one more release.
func withDeprecatedEndpoints(s connSettings, warn io.Writer) connSettings {
	apply := func(cur *string, old, std string) {
		v := strings.TrimSpace(os.Getenv(old))
		if *cur != "" || v == "" || os.Getenv(std) != "" || os.Getenv(envEndpointURL) != "" {
			return
		}
		*cur = v
		fmt.Fprintf(warn, "warning: %s is deprecated and will be ignored in a later release: set %s=%s (the AWS SDK's variable) instead\n", old, std, v)
	}
	apply(&s.kinesisEndpoint, envDeprecatedKin, envKinesisURL)
	apply(&s.dynamodbEndpoint, envDeprecatedDynamo, envDynamoDBURL)
	return s
}

// checkCredentials retrieves the credentials once, so that a command without any fails with a
// message that says what to set rather than with a signing error from the first call. Local
// emulators take any key, but one must be given: this tool never makes one up.
func checkCredentials(ctx context.Context, cfg aws.Config, s connSettings) error {
	how := "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (any values for a local emulator), " +
		"give --profile, or configure the default credential chain"
	if cfg.Credentials == nil {
		return fmt.Errorf("no AWS credentials found: %s", how)
	}
	pctx, cancel := context.WithTimeout(ctx, credentialsProbeTimeout)
	defer cancel()
	if _, err := cfg.Credentials.Retrieve(pctx); err != nil {
		if s.role != "" {
			return fmt.Errorf("assuming role %s: %w", s.role, err)
		}
		return fmt.Errorf("no AWS credentials found (%v): %s", err, how)
	}
	return nil
}

// kinesis returns the Kinesis client: endpoint --kinesis-endpoint, else the SDK's
// (AWS_ENDPOINT_URL_KINESIS, AWS_ENDPOINT_URL, the shared config's services section), else AWS.
func (c *clients) kinesis() *kinesis.Client {
	return kinesis.NewFromConfig(c.cfg, func(o *kinesis.Options) {
		if c.settings.kinesisEndpoint != "" {
			o.BaseEndpoint = aws.String(c.settings.kinesisEndpoint)
		}
	})
}

// dynamodb returns the DynamoDB client: endpoint --dynamodb-endpoint, else the SDK's
// (AWS_ENDPOINT_URL_DYNAMODB, AWS_ENDPOINT_URL, the shared config), else AWS.
func (c *clients) dynamodb() *dynamodb.Client {
	return dynamodb.NewFromConfig(c.cfg, func(o *dynamodb.Options) {
		if c.settings.dynamodbEndpoint != "" {
			o.BaseEndpoint = aws.String(c.settings.dynamodbEndpoint)
			// An emulator has no account-based endpoints.
			o.AccountIDEndpointMode = aws.AccountIDEndpointModeDisabled
		}
	})
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
// only, the region given (else AWS_REGION, else us-east-1).
func fallbackConfig(region string) aws.Config {
	if region == "" {
		region = os.Getenv(envRegion)
	}
	cfg := aws.Config{
		Region:     region,
		HTTPClient: &http.Client{Transport: http.DefaultTransport},
		Logger:     logging.Nop{},
	}
	if id, secret := os.Getenv(envAccessKeyID), os.Getenv(envSecretAccessKey); id != "" && secret != "" {
		cfg.Credentials = aws.NewCredentialsCache(
			credentials.NewStaticCredentialsProvider(id, secret, os.Getenv(envSessionToken)))
	}
	return cfg
}
