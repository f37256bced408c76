package opscli

import (
	"bufio"
	"context"
	"errors"
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

// conn is what a command reaches the services through; tests replace it.
type conn interface {
	kinesis() kinesisAPI
	dynamodb() dynamoAPI
}

type sdkConn struct{ c *clients }

func (s sdkConn) kinesis() kinesisAPI { return s.c.kinesis() }
func (s sdkConn) dynamodb() dynamoAPI { return s.c.dynamodb() }

// options are the parts of the commands that tests replace.
type options struct {
	// dial builds the clients from the resolved common flags.
	dial func(ctx context.Context, s connSettings, warn io.Writer) (conn, error)
	poll time.Duration // between two DescribeStreamSummary calls while waiting
	pace time.Duration // least time between two GetRecords calls on one shard
	// stdin answers confirmations; isTerminal says whether to ask (else --yes is needed).
	stdin      io.Reader
	isTerminal func() bool
	// leasePoll is the interval of the reads of the lease table while watching or waiting.
	leasePoll time.Duration
}

func defaultOptions() options {
	return options{
		dial: func(ctx context.Context, s connSettings, warn io.Writer) (conn, error) {
			c, err := newClients(ctx, s, warn)
			if err != nil {
				return nil, err
			}
			return sdkConn{c}, nil
		},
		poll:       pollInterval,
		pace:       getRecordsPace,
		stdin:      os.Stdin,
		isTerminal: stdinIsTerminal,
		leasePoll:  250 * time.Millisecond,
	}
}

// stdinIsTerminal says whether stdin is a character device. /dev/null is one too: the prompt
// then reads end of file, which is a no.
func stdinIsTerminal() bool {
	fi, err := os.Stdin.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// Command returns the `kinesis` command and its sub-commands. Add it to the binary with
// service.CLIOptAddCommand(opscli.Command()).
func Command() *cli.Command {
	return newCommand(defaultOptions())
}

func newCommand(o options) *cli.Command {
	return &cli.Command{
		Name:  "kinesis",
		Usage: "Operate on Kinesis streams and the inputs' lease table (create, inspect, reset, release, import)",
		Description: "Create, inspect and delete Kinesis streams, and inspect and change the lease table of aws_kinesis inputs.\n\n" +
			"The AWS settings are the components': --region, --profile, --role, --role-external-id, the SDK's\n" +
			"credential chain (AWS_ACCESS_KEY_ID, ...) and its endpoint variables AWS_ENDPOINT_URL_KINESIS,\n" +
			"AWS_ENDPOINT_URL_DYNAMODB and AWS_ENDPOINT_URL, or --kinesis-endpoint and --dynamodb-endpoint.\n" +
			"They can be given here or to the sub-command. On a local emulator:\n\n" +
			"  export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test\n" +
			"  export AWS_ENDPOINT_URL_KINESIS=http://127.0.0.1:4567 AWS_ENDPOINT_URL_DYNAMODB=http://127.0.0.1:4569\n" +
			"  kinesis create-stream --stream orders --shards 3\n" +
			"  kinesis shards --stream orders --count\n" +
			"  kinesis leases list --table checkpoints --stream orders\n" +
			"  kinesis delete-stream --stream orders --yes",
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
			o.leasesCommand(),
			{
				Name:      "delete-stream",
				Usage:     "Delete a stream and wait until it is gone (asks first; --yes when stdin is not a terminal)",
				ArgsUsage: " ",
				Flags: append(commonFlags(),
					streamFlag(),
					yesFlag(),
					&cli.BoolFlag{Name: "enforce-consumer-deletion", Usage: "also delete the stream's registered consumers"},
					timeoutFlag("how long to wait for the stream to be gone"),
				),
				Action: o.deleteStreamAction,
			},
		},
	}
}

// commonFlags returns new flags for the AWS settings and the output format. Environment
// variables are left to the SDK (or read by settings), not bound to the flags, so that a flag
// given on the `kinesis` command wins over the environment (urfave/cli would consider a flag
// with EnvVars set everywhere).
func commonFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "region", Usage: "AWS region (default: $AWS_REGION, else the shared config's, else " + defaultRegion + ")"},
		&cli.StringFlag{Name: "profile", Usage: "profile of the shared AWS config and credentials files (default: $AWS_PROFILE, else default)"},
		&cli.StringFlag{Name: "role", Usage: "ARN of a role to assume (as the components' credentials.role)"},
		&cli.StringFlag{Name: "role-external-id", Usage: "external id to give when assuming --role"},
		&cli.StringFlag{
			Name:    "kinesis-endpoint",
			Aliases: []string{"endpoint"},
			Usage:   "Kinesis endpoint URL, e.g. http://127.0.0.1:4567 (default: $" + envKinesisURL + ", else $" + envEndpointURL + ", else AWS)",
		},
		&cli.StringFlag{
			Name:  "dynamodb-endpoint",
			Usage: "DynamoDB endpoint URL, e.g. http://127.0.0.1:4569 (default: $" + envDynamoDBURL + ", else $" + envEndpointURL + ", else AWS)",
		},
		&cli.StringFlag{Name: "format", Usage: "output: table or json", Value: formatTable},
	}
}

func streamFlag() cli.Flag {
	return &cli.StringFlag{Name: "stream", Usage: "stream name, or ARN (arn:...)", Required: true}
}

func timeoutFlag(usage string) cli.Flag {
	return &cli.DurationFlag{Name: "timeout", Usage: usage, Value: defaultTimeout}
}

func yesFlag() cli.Flag {
	return &cli.BoolFlag{Name: "yes", Aliases: []string{"y"}, Usage: "do it without asking (needed when stdin is not a terminal)"}
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

// settings resolves the common flags: sub-command flag, then the parents' flags; the
// environment is the SDK's business.
func settings(c *cli.Context) connSettings {
	get := func(name string) string {
		v, _ := flagValue(c, name)
		return strings.TrimSpace(v)
	}
	return connSettings{
		region:           get("region"),
		profile:          get("profile"),
		role:             get("role"),
		roleExternalID:   get("role-external-id"),
		kinesisEndpoint:  get("kinesis-endpoint"),
		dynamodbEndpoint: get("dynamodb-endpoint"),
	}
}

// Output formats.
const (
	formatTable = "table"
	formatJSON  = "json"
)

// outputFormat returns the --format of the nearest command that has one set, else table.
func outputFormat(c *cli.Context) (string, error) {
	f, ok := flagValue(c, "format")
	if !ok {
		return formatTable, nil
	}
	switch f = strings.ToLower(strings.TrimSpace(f)); f {
	case formatTable, formatJSON:
		return f, nil
	}
	return "", fmt.Errorf("%s: --format must be table or json, got %q", c.Command.Name, f)
}

// noArgs rejects positional arguments: every input is a flag.
func noArgs(c *cli.Context) error {
	if c.Args().Present() {
		return fmt.Errorf("%s: unexpected arguments %q (flags go before them)", c.Command.Name, c.Args().Slice())
	}
	return nil
}

// connect checks the arguments and builds the clients.
func (o options) connect(c *cli.Context) (conn, error) {
	if err := noArgs(c); err != nil {
		return nil, err
	}
	if _, err := outputFormat(c); err != nil {
		return nil, err
	}
	return o.connectFn()(c.Context, settings(c), c.App.ErrWriter)
}

func (o options) connectFn() func(ctx context.Context, s connSettings, warn io.Writer) (conn, error) {
	if o.dial != nil {
		return o.dial
	}
	return defaultOptions().dial
}

// setup checks the arguments and returns the stream and the Kinesis client.
func (o options) setup(c *cli.Context) (kinesisapi.Stream, kinesisAPI, error) {
	if err := noArgs(c); err != nil {
		return "", nil, err
	}
	s := kinesisapi.Stream(strings.TrimSpace(c.String("stream")))
	if s == "" {
		return "", nil, fmt.Errorf("%s: --stream is empty", c.Command.Name)
	}
	cn, err := o.connect(c)
	if err != nil {
		return "", nil, err
	}
	return s, cn.kinesis(), nil
}

// errNotConfirmed is returned when a destructive command was not confirmed.
var errNotConfirmed = errors.New("not confirmed")

// confirm asks before a destructive action: --yes goes ahead; on a terminal the user is asked
// (anything but y or yes is a no, and so is the end of stdin); otherwise it refuses, since
// nobody can answer.
func (o options) confirm(c *cli.Context, question string) error {
	if c.Bool("yes") {
		return nil
	}
	isTerm := o.isTerminal
	if isTerm == nil {
		isTerm = stdinIsTerminal
	}
	if !isTerm() {
		return fmt.Errorf("%s: %s: stdin is not a terminal, so nobody can confirm: pass --yes to do it", c.Command.Name, question)
	}
	fmt.Fprintf(c.App.ErrWriter, "%s [y/N] ", question)
	in := o.stdin
	if in == nil {
		in = os.Stdin
	}
	line, err := bufio.NewReader(in).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("%s: reading the answer: %w", c.Command.Name, err)
	}
	switch strings.ToLower(strings.TrimSpace(line)) {
	case "y", "yes":
		return nil
	case "":
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("%s: %w: stdin ended without an answer (pass --yes when nobody can answer): nothing changed", c.Command.Name, errNotConfirmed)
		}
	}
	return fmt.Errorf("%s: %w: nothing changed", c.Command.Name, errNotConfirmed)
}

func timeoutValue(c *cli.Context) (time.Duration, error) {
	d := c.Duration("timeout")
	if d <= 0 {
		return 0, fmt.Errorf("%s: --timeout must be positive, got %s", c.Command.Name, d)
	}
	return d, nil
}

// streamJSON is create-stream's and delete-stream's JSON output.
type streamJSON struct {
	Stream     string `json:"stream"`
	Created    *bool  `json:"created,omitempty"`
	Existed    bool   `json:"existed"`
	Deleted    *bool  `json:"deleted,omitempty"`
	Status     string `json:"status,omitempty"`
	OpenShards *int32 `json:"open_shards,omitempty"`
	ARN        string `json:"arn,omitempty"`
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
	if f, _ := outputFormat(c); f == formatJSON {
		created := !res.existed
		return writeJSON(c.App.Writer, streamJSON{
			Stream: s.String(), Created: &created, Existed: res.existed, Status: string(res.summary.StreamStatus),
			OpenShards: &open, ARN: aws.ToString(res.summary.StreamARN),
		})
	}
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
	format, _ := outputFormat(c)
	report := func(existed bool) error {
		if format == formatJSON {
			return writeJSON(c.App.Writer, streamJSON{Stream: s.String(), Existed: existed, Deleted: &existed})
		}
		if !existed {
			_, err := fmt.Fprintf(c.App.Writer, "stream %s does not exist: nothing to delete\n", s)
			return err
		}
		_, err := fmt.Fprintf(c.App.Writer, "deleted stream %s\n", s)
		return err
	}
	// Ask only about a stream that is there: deleting nothing needs no confirmation.
	sum, err := describe(ctx, api, s)
	if kinesisapi.IsNotFound(err) {
		return report(false)
	}
	if err != nil {
		return fmt.Errorf("delete-stream: describing stream %s: %w", s, err)
	}
	question := fmt.Sprintf("Delete stream %s (%s, %s, %s) and every record in it?", s,
		sum.StreamStatus, openShards(aws.ToInt32(sum.OpenShardCount)), aws.ToString(sum.StreamARN))
	if err := o.confirm(c, question); err != nil {
		return err
	}
	existed, err := deleteStream(ctx, api, s, c.Bool("enforce-consumer-deletion"), o.poll)
	if err != nil {
		return err
	}
	return report(existed)
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
	if f, _ := outputFormat(c); f == formatJSON {
		return writeShardsJSON(c.App.Writer, shards, counts)
	}
	return writeShards(c.App.Writer, shards, counts)
}

// shardJSON is one shard of the shards command's JSON output.
type shardJSON struct {
	ShardID                string   `json:"shard_id"`
	Parents                []string `json:"parents"`
	State                  string   `json:"state"`
	StartingHashKey        string   `json:"starting_hash_key"`
	EndingHashKey          string   `json:"ending_hash_key"`
	StartingSequenceNumber string   `json:"starting_sequence_number,omitempty"`
	EndingSequenceNumber   string   `json:"ending_sequence_number,omitempty"`
	Records                *int64   `json:"records,omitempty"`
}

func writeShardsJSON(w io.Writer, shards []types.Shard, counts []int64) error {
	out := struct {
		Shards []shardJSON `json:"shards"`
		Total  *int64      `json:"total_records,omitempty"`
	}{Shards: make([]shardJSON, 0, len(shards))}
	var total int64
	for i, sh := range shards {
		j := shardJSON{ShardID: aws.ToString(sh.ShardId), Parents: shardParents(sh), State: shardState(sh)}
		if sh.HashKeyRange != nil {
			j.StartingHashKey, j.EndingHashKey = aws.ToString(sh.HashKeyRange.StartingHashKey), aws.ToString(sh.HashKeyRange.EndingHashKey)
		}
		if r := sh.SequenceNumberRange; r != nil {
			j.StartingSequenceNumber, j.EndingSequenceNumber = aws.ToString(r.StartingSequenceNumber), aws.ToString(r.EndingSequenceNumber)
		}
		if counts != nil {
			n := counts[i]
			j.Records = &n
			total += n
		}
		out.Shards = append(out.Shards, j)
	}
	if counts != nil {
		out.Total = &total
	}
	return writeJSON(w, out)
}

// shardState is open, or closed once the shard has an ending sequence number.
func shardState(sh types.Shard) string {
	if sh.SequenceNumberRange != nil && sh.SequenceNumberRange.EndingSequenceNumber != nil {
		return "closed"
	}
	return "open"
}

// shardParents returns the shard's parent and adjacent parent, the ones it has.
func shardParents(sh types.Shard) []string {
	ps := []string{}
	for _, p := range []*string{sh.ParentShardId, sh.AdjacentParentShardId} {
		if aws.ToString(p) != "" {
			ps = append(ps, *p)
		}
	}
	return ps
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
		var start, end string
		if sh.HashKeyRange != nil {
			start, end = aws.ToString(sh.HashKeyRange.StartingHashKey), aws.ToString(sh.HashKeyRange.EndingHashKey)
		}
		row := strings.Join([]string{
			orDash(aws.ToString(sh.ShardId)),
			orDash(aws.ToString(sh.ParentShardId)),
			orDash(aws.ToString(sh.AdjacentParentShardId)),
			shardState(sh),
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
