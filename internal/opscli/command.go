package opscli

import (
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/urfave/cli/v2"

	"github.com/benthos-kinesis/benthos-kinesis/internal/kinesisapi"
)

// defaultTimeout bounds the wait of create-stream and delete-stream.
const defaultTimeout = 2 * time.Minute

// options are the parts of the commands that tests replace.
type options struct {
	// newAPI builds the Kinesis client from the resolved common flags.
	newAPI func(ctx context.Context, s connSettings, warn io.Writer) (kinesisAPI, error)
	poll   time.Duration // between two DescribeStreamSummary calls while waiting
	pace   time.Duration // least time between two GetRecords calls on one shard
}

func defaultOptions() options {
	return options{
		newAPI: func(ctx context.Context, s connSettings, warn io.Writer) (kinesisAPI, error) {
			return newClient(ctx, s, warn)
		},
		poll: pollInterval,
		pace: getRecordsPace,
	}
}

// Command returns the `kinesis` command and its sub-commands create-stream, shards and
// delete-stream. Add it to the binary with service.CLIOptAddCommand(opscli.Command()).
func Command() *cli.Command {
	return newCommand(defaultOptions())
}

func newCommand(o options) *cli.Command {
	return &cli.Command{
		Name:  "kinesis",
		Usage: "Operate on Kinesis streams and the inputs' lease table (create, inspect)",
		Description: "Create, inspect and delete Kinesis streams, for example on a local emulator:\n\n" +
			"  kinesis create-stream --endpoint http://127.0.0.1:4567 --stream orders --shards 3\n" +
			"  kinesis shards --endpoint http://127.0.0.1:4567 --stream orders --count\n" +
			"  kinesis delete-stream --endpoint http://127.0.0.1:4567 --stream orders\n\n" +
			"--endpoint and --region can be given here or to the sub-command.",
		Flags: commonFlags(),
		Subcommands: []*cli.Command{
			{
				Name:      "create-stream",
				Usage:     "Create a stream (or find it already there) and wait until it is ACTIVE",
				ArgsUsage: " ",
				Flags: append(commonFlags(),
					streamFlag(),
					&cli.IntFlag{Name: "shards", Usage: "number of shards", Required: true},
					timeoutFlag("how long to wait for the stream to become ACTIVE"),
				),
				Action: o.createStreamAction,
			},
			{
				Name:      "shards",
				Usage:     "List the shards of a stream, and with --count the records each one holds",
				ArgsUsage: " ",
				Flags: append(commonFlags(),
					streamFlag(),
					&cli.BoolFlag{Name: "count", Usage: "read every shard from TRIM_HORIZON to its tip and count its records"},
					&cli.IntFlag{Name: "page-size", Usage: "MaxResults of each ListShards call (0: the service's default)", Hidden: true},
				),
				Action: o.shardsAction,
			},
			leasesCommand(),
			{
				Name:      "delete-stream",
				Usage:     "Delete a stream and wait until it is gone",
				ArgsUsage: " ",
				Flags: append(commonFlags(),
					streamFlag(),
					&cli.BoolFlag{Name: "enforce-consumer-deletion", Usage: "also delete the stream's registered consumers"},
					timeoutFlag("how long to wait for the stream to be gone"),
				),
				Action: o.deleteStreamAction,
			},
		},
	}
}

// commonFlags returns new --endpoint and --region flags. Their environment variables are read
// by settings, not by the flags, so that a flag given on the `kinesis` command wins over the
// environment (urfave/cli would consider a flag with an EnvVars set everywhere).
func commonFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{
			Name:  "endpoint",
			Usage: "Kinesis endpoint URL, e.g. http://127.0.0.1:4567 (default: $" + envEndpoint + ", else AWS)",
		},
		&cli.StringFlag{
			Name:  "region",
			Usage: "AWS region (default: $" + envRegion + ", else the shared config's, else " + defaultRegion + ")",
		},
	}
}

func streamFlag() cli.Flag {
	return &cli.StringFlag{Name: "stream", Usage: "stream name, or ARN (arn:...)", Required: true}
}

func timeoutFlag(usage string) cli.Flag {
	return &cli.DurationFlag{Name: "timeout", Usage: usage, Value: defaultTimeout}
}

// flagValue returns the value of the string flag name from the nearest command of c's lineage
// where it was given on the command line.
func flagValue(c *cli.Context, name string) (string, bool) {
	for _, ctx := range c.Lineage() {
		if ctx.IsSet(name) {
			return ctx.String(name), true
		}
	}
	return "", false
}

// settings resolves the common flags: sub-command flag, then `kinesis` flag, then environment.
func settings(c *cli.Context) connSettings {
	var s connSettings
	var ok bool
	if s.endpoint, ok = flagValue(c, "endpoint"); !ok {
		s.endpoint = os.Getenv(envEndpoint)
	}
	// Left empty, the SDK reads AWS_REGION and then the shared config.
	s.region, _ = flagValue(c, "region")
	s.endpoint = strings.TrimSpace(s.endpoint)
	s.region = strings.TrimSpace(s.region)
	return s
}

// setup checks the arguments and returns the stream and the client.
func (o options) setup(c *cli.Context) (kinesisapi.Stream, kinesisAPI, error) {
	if c.Args().Present() {
		return "", nil, fmt.Errorf("%s: unexpected arguments %q (flags go before them)", c.Command.Name, c.Args().Slice())
	}
	s := kinesisapi.Stream(strings.TrimSpace(c.String("stream")))
	if s == "" {
		return "", nil, fmt.Errorf("%s: --stream is empty", c.Command.Name)
	}
	api, err := o.newAPI(c.Context, settings(c), c.App.ErrWriter)
	if err != nil {
		return "", nil, err
	}
	return s, api, nil
}

func timeoutValue(c *cli.Context) (time.Duration, error) {
	d := c.Duration("timeout")
	if d <= 0 {
		return 0, fmt.Errorf("%s: --timeout must be positive, got %s", c.Command.Name, d)
	}
	return d, nil
}

func (o options) createStreamAction(c *cli.Context) error {
	shards := c.Int("shards")
	if shards < 1 || shards > math.MaxInt32 {
		return fmt.Errorf("create-stream: --shards must be at least 1, got %d", shards)
	}
	timeout, err := timeoutValue(c)
	if err != nil {
		return err
	}
	s, api, err := o.setup(c)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(c.Context, timeout)
	defer cancel()
	res, err := createStream(ctx, api, s, int32(shards), o.poll)
	if err != nil {
		return err
	}
	open := aws.ToInt32(res.summary.OpenShardCount)
	if !res.existed {
		_, err = fmt.Fprintf(c.App.Writer, "created stream %s: ACTIVE, %s, %s\n",
			s, openShards(open), aws.ToString(res.summary.StreamARN))
		return err
	}
	note := ""
	if int(open) != shards {
		note = fmt.Sprintf(" (left as is, not %d)", shards)
	}
	_, err = fmt.Fprintf(c.App.Writer, "stream %s already exists: ACTIVE, %s%s, %s\n",
		s, openShards(open), note, aws.ToString(res.summary.StreamARN))
	return err
}

func openShards(n int32) string {
	if n == 1 {
		return "1 open shard"
	}
	return fmt.Sprintf("%d open shards", n)
}

func (o options) deleteStreamAction(c *cli.Context) error {
	timeout, err := timeoutValue(c)
	if err != nil {
		return err
	}
	s, api, err := o.setup(c)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(c.Context, timeout)
	defer cancel()
	existed, err := deleteStream(ctx, api, s, c.Bool("enforce-consumer-deletion"), o.poll)
	if err != nil {
		return err
	}
	if !existed {
		_, err = fmt.Fprintf(c.App.Writer, "stream %s does not exist: nothing to delete\n", s)
		return err
	}
	_, err = fmt.Fprintf(c.App.Writer, "deleted stream %s\n", s)
	return err
}

func (o options) shardsAction(c *cli.Context) error {
	pageSize := c.Int("page-size")
	if pageSize < 0 || pageSize > 10000 {
		return fmt.Errorf("shards: --page-size must be between 0 and 10000, got %d", pageSize)
	}
	s, api, err := o.setup(c)
	if err != nil {
		return err
	}
	shards, err := kinesisapi.ListShards(c.Context, api, s, int32(pageSize))
	if err != nil {
		return err
	}
	var counts []int64
	if c.Bool("count") {
		counts = make([]int64, len(shards))
		for i, sh := range shards {
			if counts[i], err = countRecords(c.Context, api, s, aws.ToString(sh.ShardId), o.pace); err != nil {
				return err
			}
		}
	}
	return writeShards(c.App.Writer, shards, counts)
}

// writeShards prints the shards as an aligned table, one token per cell ("-" for none), with a
// RECORDS column and a final total line when counts is not nil.
func writeShards(w io.Writer, shards []types.Shard, counts []int64) error {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	header := "SHARD_ID\tPARENT\tADJACENT_PARENT\tSTATE\tSTARTING_HASH_KEY\tENDING_HASH_KEY"
	if counts != nil {
		header += "\tRECORDS"
	}
	fmt.Fprintln(tw, header)
	var total int64
	for i, sh := range shards {
		state := "open"
		if sh.SequenceNumberRange != nil && sh.SequenceNumberRange.EndingSequenceNumber != nil {
			state = "closed"
		}
		var start, end string
		if sh.HashKeyRange != nil {
			start, end = aws.ToString(sh.HashKeyRange.StartingHashKey), aws.ToString(sh.HashKeyRange.EndingHashKey)
		}
		row := strings.Join([]string{
			orDash(aws.ToString(sh.ShardId)),
			orDash(aws.ToString(sh.ParentShardId)),
			orDash(aws.ToString(sh.AdjacentParentShardId)),
			state,
			orDash(start),
			orDash(end),
		}, "\t")
		if counts != nil {
			row += fmt.Sprintf("\t%d", counts[i])
			total += counts[i]
		}
		fmt.Fprintln(tw, row)
	}
	if counts != nil {
		fmt.Fprintf(tw, "total\t\t\t\t\t\t%d\n", total)
	}
	return tw.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
