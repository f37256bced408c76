// Package awssession holds the AWS connection fields shared by this project's
// components (region, endpoint, tcp, credentials), with the same names and
// meaning as Redpanda Connect's built-in AWS components, and turns a parsed
// config into an aws.Config plus the HTTP client the service clients use.
package awssession

import (
	"context"
	"fmt"
	"net"
	"net/http"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/credentials/ec2rolecreds"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/redpanda-data/benthos/v4/public/service"
	"github.com/redpanda-data/benthos/v4/public/utils/netutil"
)

// Fields returns the connection fields: region, endpoint, tcp, credentials.
// Each optional field defaults to what the built-in components print for it
// (`""`, `false`) so that the config `create` prints runs as it is: an
// example value there (a profile, a role) would be taken at face value.
func Fields() []*service.ConfigField {
	return []*service.ConfigField{
		service.NewStringField("region").
			Description("The AWS region to target. Empty means the region of the environment (AWS_REGION, the shared config file).").
			Example("eu-west-1").
			Default("").
			Advanced(),
		service.NewStringField("endpoint").
			Description("A custom endpoint for the AWS API, for example a local emulator or a VPC endpoint. Empty means the SDK's own, which follows the standard variables such as `AWS_ENDPOINT_URL_KINESIS` and `AWS_ENDPOINT_URL_DYNAMODB`.").
			Example("http://127.0.0.1:4567").
			Default("").
			Advanced(),
		netutil.DialerConfigSpec(),
		service.NewObjectField("credentials",
			service.NewStringField("profile").
				Description("A profile from `~/.aws/credentials` to use. Empty means the SDK's default chain (environment, shared files, instance role).").
				Example("production").
				Default(""),
			service.NewStringField("id").
				Description("The ID of credentials to use.").
				Example("AKIAIOSFODNN7EXAMPLE").
				Default("").Advanced(),
			service.NewStringField("secret").
				Description("The secret for the credentials being used.").
				Example("${AWS_SECRET}").
				Default("").Advanced().Secret(),
			service.NewStringField("token").
				Description("The token for the credentials being used, required when using short term credentials.").
				Example("${AWS_SESSION_TOKEN}").
				Default("").Advanced(),
			service.NewBoolField("from_ec2_role").
				Description("Use the credentials of the host EC2 machine's IAM role (instance metadata).").
				Example(true).
				Default(false),
			service.NewStringField("role").
				Description("A role ARN to assume. Empty means no role is assumed.").
				Example("arn:aws:iam::111122223333:role/kinesis-reader").
				Default("").Advanced(),
			service.NewStringField("role_external_id").
				Description("An external ID to provide when assuming a role.").
				Example("my-external-id").
				Default("").Advanced(),
		).
			Description("Explicit AWS credentials. Without them the SDK's default chain is used (environment, shared files, instance role).").
			Advanced(),
	}
}

// Session is the AWS config a service client is built from.
type Session struct {
	Config aws.Config
}

// FromParsed builds a Session from a parsed config holding the Fields at its
// root (pass pConf.Namespace("dynamodb") for a nested set).
func FromParsed(ctx context.Context, pConf *service.ParsedConfig) (Session, error) {
	var opts []func(*config.LoadOptions) error
	if region, _ := pConf.FieldString("region"); region != "" {
		opts = append(opts, config.WithRegion(region))
	}

	creds := pConf.Namespace("credentials")
	if profile, _ := creds.FieldString("profile"); profile != "" {
		opts = append(opts, config.WithSharedConfigProfile(profile))
	} else if id, _ := creds.FieldString("id"); id != "" {
		secret, _ := creds.FieldString("secret")
		token, _ := creds.FieldString("token")
		opts = append(opts, config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(id, secret, token)))
	}

	httpClient, err := httpClientFromParsed(pConf)
	if err != nil {
		return Session{}, err
	}
	opts = append(opts, config.WithHTTPClient(httpClient))

	conf, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return Session{}, fmt.Errorf("load AWS config: %w", err)
	}
	conf.HTTPClient = ReadOnlyBodies(conf.HTTPClient)
	if conf.Region == "" {
		// The SDK refuses to sign without a region; a local endpoint does not
		// care which, and a real one is better told by the error it returns.
		conf.Region = "us-east-1"
	}
	if endpoint, _ := pConf.FieldString("endpoint"); endpoint != "" {
		conf.BaseEndpoint = aws.String(endpoint)
	}
	if role, _ := creds.FieldString("role"); role != "" {
		var stsOpts []func(*stscreds.AssumeRoleOptions)
		if extID, _ := creds.FieldString("role_external_id"); extID != "" {
			stsOpts = append(stsOpts, func(o *stscreds.AssumeRoleOptions) { o.ExternalID = aws.String(extID) })
		}
		stsClient := sts.NewFromConfig(conf)
		conf.Credentials = aws.NewCredentialsCache(stscreds.NewAssumeRoleProvider(stsClient, role, stsOpts...))
	}
	if fromEC2, _ := creds.FieldBool("from_ec2_role"); fromEC2 {
		conf.Credentials = aws.NewCredentialsCache(ec2rolecreds.New())
	}
	if f := recorder.Load(); f != nil {
		// Tests only (RecordOperations). Added last so that the STS client of an assumed role
		// is not recorded: its AssumeRole is the caller's permission, not the role's.
		conf.APIOptions = append(conf.APIOptions, recordingOption(*f))
	}
	return Session{Config: conf}, nil
}

// httpClientFromParsed returns the SDK's buildable HTTP client with a dialer
// that follows the tcp fields. A buildable client (not a plain http.Client)
// keeps AWS_CA_BUNDLE working: the SDK can only add a CA bundle to it.
func httpClientFromParsed(pConf *service.ParsedConfig) (*awshttp.BuildableClient, error) {
	var dConf *netutil.DialerConfig
	if pConf.Contains("tcp") {
		c, err := netutil.DialerConfigFromParsed(pConf.Namespace("tcp"))
		if err != nil {
			return nil, fmt.Errorf("tcp: %w", err)
		}
		if err := c.Validate(); err != nil {
			return nil, fmt.Errorf("tcp: %w", err)
		}
		dConf = &c
	}
	return awshttp.NewBuildableClient().
		WithDialerOptions(func(d *net.Dialer) {
			if dConf == nil {
				return
			}
			sdkTimeout := d.Timeout
			_ = netutil.DecorateDialer(d, *dConf) // validated above
			if d.Timeout == 0 {
				// A zero connect_timeout keeps the SDK's bounded default
				// rather than waiting forever on a dead address.
				d.Timeout = sdkTimeout
			}
		}).
		WithTransportOptions(func(t *http.Transport) {
			// Many concurrent PutRecords and GetRecords calls go to one host.
			t.MaxIdleConns = 256
			t.MaxIdleConnsPerHost = 256
		}), nil
}
