package opscli

import (
	"context"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/smithy-go/logging"
	"github.com/urfave/cli/v2"

	"github.com/benthos-kinesis/benthos-kinesis/checkpointer"
)

const envDynamoDBEndpoint = "DYNAMODB_ENDPOINT"

func leasesCommand() *cli.Command {
	return &cli.Command{
		Name:      "leases",
		Usage:     "Show the lease table of aws_kinesis inputs: owner, epoch and checkpoint of every shard, and the live workers",
		UsageText: "benthos-kinesis kinesis leases --table TABLE --stream STREAM [--dynamodb-endpoint URL]",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "table", Usage: "the DynamoDB table of the inputs (dynamodb.table)", Required: true},
			&cli.StringSliceFlag{Name: "stream", Usage: "stream as configured in the inputs (repeat for several)", Required: true},
			&cli.StringFlag{Name: "dynamodb-endpoint", Usage: "DynamoDB endpoint (default $" + envDynamoDBEndpoint + ", empty: AWS)"},
			&cli.StringFlag{Name: "region", Usage: "AWS region (default $AWS_REGION, the shared config, then us-east-1)"},
		},
		Action: leasesAction,
	}
}

func leasesAction(c *cli.Context) error {
	endpoint := c.String("dynamodb-endpoint")
	if endpoint == "" {
		endpoint = os.Getenv(envDynamoDBEndpoint)
	}
	opts := []func(*config.LoadOptions) error{config.WithLogger(logging.Nop{})}
	if r := c.String("region"); r != "" {
		opts = append(opts, config.WithRegion(r))
	}
	cfg, err := config.LoadDefaultConfig(c.Context, opts...)
	if err != nil {
		return fmt.Errorf("loading AWS config: %w", err)
	}
	if cfg.Region == "" {
		cfg.Region = defaultRegion
	}
	if endpoint != "" && os.Getenv("AWS_ACCESS_KEY_ID") == "" {
		cfg.Credentials = staticTestCredentials() // a local emulator takes any
	}
	client := dynamodb.NewFromConfig(cfg, func(o *dynamodb.Options) {
		if endpoint != "" {
			o.BaseEndpoint = aws.String(endpoint)
		}
	})
	table, err := checkpointer.New(client, c.String("table"), "operator")
	if err != nil {
		return err
	}
	return writeLeases(c.Context, c.App.Writer, table, c.StringSlice("stream"))
}

// writeLeases prints every shard row of the streams, then the worker rows.
func writeLeases(ctx context.Context, w io.Writer, table *checkpointer.Table, streams []string) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "STREAM\tSHARD_ID\tOWNER\tEPOCH\tSTATE\tHANDOFF_TO\tCHECKPOINT")
	owned := map[string]int{}
	for _, s := range streams {
		leases, err := table.Leases(ctx, s)
		if err != nil {
			return err
		}
		sort.Slice(leases, func(i, j int) bool { return leases[i].Shard < leases[j].Shard })
		for _, l := range leases {
			state := "leased"
			switch {
			case l.Finished:
				state = "finished"
			case l.ClientID == "":
				state = "free"
			}
			if l.ClientID != "" {
				owned[l.ClientID]++
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\n", s, l.Shard, orDash(l.ClientID), l.Epoch, state, orDash(l.HandoffTo), orDash(l.SequenceNumber))
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	workers, err := table.Workers(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "WORKER\tHEARTBEAT\tSHARDS\tSTREAMS")
	for _, wk := range workers {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\n", wk.ID, wk.Heartbeat, owned[wk.ID], orDash(strings.Join(wk.Streams, ",")))
	}
	return tw.Flush()
}
