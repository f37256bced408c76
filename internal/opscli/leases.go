package opscli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	dtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/urfave/cli/v2"

	"github.com/benthos-kinesis/benthos-kinesis/checkpointer"
	"github.com/benthos-kinesis/benthos-kinesis/internal/kinesisapi"
)

// defaultLeasePeriod is the inputs' default lease_period: the liveness of workers is judged
// with it, or with --lease-period, unless their worker rows say a longer one.
const defaultLeasePeriod = 3500 * time.Millisecond

// oldestStart is the StartAt written for "from the oldest record": AT_TIMESTAMP with a time
// before every record gives the oldest untrimmed one (TRIM_HORIZON), whatever the inputs'
// start_from_oldest and start_timestamp say.
var oldestStart = time.Unix(0, 0).UTC()

func (o options) leasesCommand() *cli.Command {
	list := o.leaseFlags(false)
	return &cli.Command{
		Name:  "leases",
		Usage: "Inspect and change the lease table of aws_kinesis inputs (list, reset, release, import)",
		Description: "Without a sub-command, the same as `leases list`.\n\n" +
			"Liveness is judged as the inputs judge it, from the heartbeats of the worker rows: a worker whose\n" +
			"counter changes is alive, one whose counter stands still for --lease-period (less three quarters of\n" +
			"a heartbeat) is dead. Each worker row says the lease_period its worker runs with, and the longest\n" +
			"of those and --lease-period (default 3.5s) is used. Give --lease-period only for workers whose rows\n" +
			"do not say it (written by an older version) and that run with a lease_period other than 3.5s.",
		Flags:  list,
		Action: o.leasesListAction,
		Subcommands: []*cli.Command{
			{
				Name:      "list",
				Usage:     "Per shard: state, owner, its worker name (host:pid) and whether it is alive, epoch, checkpoint, parents; then the workers",
				ArgsUsage: " ",
				Flags:     o.leaseFlags(false),
				Action:    o.leasesListAction,
			},
			{
				Name:  "reset",
				Usage: "Move the checkpoints of a stream's shards: --to oldest|latest|timestamp=RFC3339|sequence=N",
				Description: "oldest: every record still in the stream; latest: only records written after the reset;\n" +
					"timestamp=T: the first record written at or after T (AT_TIMESTAMP); sequence=N: after record N\n" +
					"(needs exactly one --shard).\n\n" +
					"The plan is printed before anything changes. A shard owned by a live worker is refused unless\n" +
					"--force; every write bumps the shard's epoch, so its owner can no longer write its old checkpoint:\n" +
					"a forced owner keeps its lease, drops what it had in flight and reads again from the new position.\n" +
					"Asks for confirmation on a terminal; needs --yes otherwise.",
				ArgsUsage: " ",
				Flags: append(o.leaseFlags(true),
					&cli.StringFlag{Name: "to", Usage: "oldest, latest, timestamp=RFC3339 or sequence=N"},
					&cli.StringSliceFlag{Name: "shard", Usage: "only this shard (repeat for several; default: every shard of the stream)"},
					&cli.BoolFlag{Name: "dry-run", Usage: "print the plan and change nothing"},
					&cli.BoolFlag{Name: "force", Usage: "also move shards owned by live workers (they are fenced and re-read from the new position)"},
					yesFlag(),
				),
				Action: o.leasesResetAction,
			},
			{
				Name:  "release",
				Usage: "Ask the owner of a shard to hand it over gracefully, and give it back to the fleet",
				Description: "The tool joins the table as a short-lived worker (its own worker row, beating), asks the owner for\n" +
					"the shard with the protocol's hand-off request, and once the owner has handed it over (after its\n" +
					"delivered batches are acknowledged, with its final checkpoint) releases it: the fleet claims it\n" +
					"again, possibly the same worker. Nothing is delivered twice.",
				ArgsUsage: " ",
				Flags: append(o.leaseFlags(true),
					&cli.StringFlag{Name: "shard", Usage: "the shard to release"},
					&cli.DurationFlag{Name: "wait", Usage: "how long to wait for the owner to hand the shard over", Value: time.Minute},
				),
				Action: o.leasesReleaseAction,
			},
			{
				Name:  "import",
				Usage: "Adopt the checkpoints of a KCL application's lease table (--from-kcl --kcl-table K)",
				Description: "Reads the KCL lease table (leaseKey, checkpoint, checkpointSubSequenceNumber, parentShardIds) and\n" +
					"writes the stream's rows of --table so that the inputs resume where the KCL application stopped:\n" +
					"a sequence number becomes the checkpoint, SHARD_END finished, TRIM_HORIZON the oldest record,\n" +
					"LATEST the time of the import, AT_TIMESTAMP the time of --kcl-timestamp. Stop the KCL application\n" +
					"first. See docs/MIGRATION-KCL.md.",
				ArgsUsage: " ",
				Flags: append(o.leaseFlags(true),
					&cli.BoolFlag{Name: "from-kcl", Usage: "import from a KCL (1.x, 2.x or 3.x) lease table"},
					&cli.StringFlag{Name: "kcl-table", Usage: "the KCL application's lease table (its application name)"},
					&cli.StringFlag{Name: "kcl-timestamp", Usage: "RFC 3339: where leases checkpointed AT_TIMESTAMP start (the KCL application's initial position)"},
					&cli.BoolFlag{Name: "dry-run", Usage: "print the plan and change nothing"},
					&cli.BoolFlag{Name: "force", Usage: "also overwrite shards owned by live workers of the inputs"},
					yesFlag(),
				),
				Action: o.leasesImportAction,
			},
		},
	}
}

// leaseFlags are the flags every leases sub-command takes; one: a single --stream.
func (o options) leaseFlags(one bool) []cli.Flag {
	stream := cli.Flag(&cli.StringSliceFlag{Name: "stream", Usage: "stream as configured in the inputs (repeat for several)"})
	if one {
		stream = &cli.StringFlag{Name: "stream", Usage: "stream as configured in the inputs (name or ARN)"}
	}
	return append(commonFlags(),
		&cli.StringFlag{Name: "table", Usage: "the inputs' DynamoDB table (dynamodb.table)"},
		stream,
		&cli.DurationFlag{Name: "lease-period", Usage: "the inputs' lease_period, to judge which workers are alive (a longer one written in their worker rows wins)", Value: defaultLeasePeriod},
	)
}

// leaseSession is what a leases sub-command works with.
type leaseSession struct {
	table       *checkpointer.Table
	dyn         dynamoAPI
	kin         kinesisAPI
	leasePeriod time.Duration
	poll        time.Duration
	format      string
	out, warn   io.Writer
}

// openLeases checks the common arguments of a leases sub-command, connects, and checks that the
// table exists and is a lease table. worker is the id the tool writes as (release only).
func (o options) openLeases(c *cli.Context, worker string) (*leaseSession, error) {
	name := c.Command.FullName()
	tableName := strings.TrimSpace(c.String("table"))
	if tableName == "" {
		return nil, fmt.Errorf("%s: --table is required (the inputs' dynamodb.table)", name)
	}
	lp := c.Duration("lease-period")
	if lp < 300*time.Millisecond {
		return nil, fmt.Errorf("%s: --lease-period must be at least 300ms, got %v", name, lp)
	}
	format, err := outputFormat(c)
	if err != nil {
		return nil, err
	}
	cn, err := o.connect(c)
	if err != nil {
		return nil, err
	}
	dyn := cn.dynamodb()
	if worker == "" {
		worker = "benthos-kinesis-operator"
	}
	table, err := checkpointer.New(dyn, tableName, worker, checkpointer.WithLeasePeriod(lp))
	if err != nil {
		return nil, err
	}
	if err := checkTable(c.Context, dyn, table); err != nil {
		return nil, err
	}
	poll := o.leasePoll
	if poll <= 0 {
		poll = 250 * time.Millisecond
	}
	return &leaseSession{
		table: table, dyn: dyn, kin: cn.kinesis(), leasePeriod: lp, poll: min(poll, lp/6),
		format: format, out: c.App.Writer, warn: c.App.ErrWriter,
	}, nil
}

// checkTable says clearly when the table does not exist, then checks its key schema.
func checkTable(ctx context.Context, api checkpointer.API, table *checkpointer.Table) error {
	_, err := api.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(table.Name())})
	var notFound *dtypes.ResourceNotFoundException
	if errors.As(err, &notFound) {
		return fmt.Errorf("dynamodb table %q does not exist (check --table, the region and the DynamoDB endpoint): %w", table.Name(), err)
	}
	if err != nil {
		return fmt.Errorf("describe dynamodb table %q: %w", table.Name(), err)
	}
	return table.EnsureTable(ctx, false, "", 0, 0)
}

// oneStream returns the single --stream of a sub-command.
func oneStream(c *cli.Context) (kinesisapi.Stream, error) {
	s := strings.TrimSpace(c.String("stream"))
	if s == "" {
		return "", fmt.Errorf("%s: --stream is required (the stream as configured in the inputs)", c.Command.FullName())
	}
	if s == checkpointer.WorkersPartition {
		return "", fmt.Errorf("%s: %q is the partition of the worker rows, not a stream", c.Command.FullName(), s)
	}
	return kinesisapi.Stream(s), nil
}

// shardView is one shard of a stream: as listed by Kinesis (Listed false: only a row, the shard
// has aged out) and as its row says.
type shardView struct {
	Stream  string
	Shard   string
	Listed  bool
	Closed  bool
	Parents []string
	// ListedParents are the parents ListShards still lists: while there is one, the inputs
	// read the shard from its oldest record whatever its row's StartAt says.
	ListedParents []string
	Row           checkpointer.Lease
}

// isChild says whether the inputs treat the shard as the child of a reshard (a parent still
// listed): they read it from its oldest record unless it has a checkpoint.
func (v shardView) isChild() bool { return len(v.ListedParents) > 0 }

// state is open, closed (listed, with an ending sequence number), finished (its row says so)
// or gone (a row for a shard the stream no longer lists).
func (v shardView) state() string {
	switch {
	case v.Row.Finished:
		return "finished"
	case !v.Listed:
		return "gone"
	case v.Closed:
		return "closed"
	}
	return "open"
}

// streamShards lists the stream's shards and reads their rows, in shard order.
func (ls *leaseSession) streamShards(ctx context.Context, s kinesisapi.Stream) ([]shardView, error) {
	listed, err := kinesisapi.ListShards(ctx, ls.kin, s, 0)
	if err != nil {
		return nil, err
	}
	rows, err := ls.table.Leases(ctx, s.String())
	if err != nil {
		return nil, err
	}
	byID := map[string]int{}
	views := make([]shardView, 0, len(listed))
	for _, sh := range listed {
		id := aws.ToString(sh.ShardId)
		byID[id] = len(views)
		views = append(views, shardView{
			Stream: s.String(), Shard: id, Listed: true, Closed: shardState(sh) == "closed", Parents: shardParents(sh),
			Row: checkpointer.Lease{Stream: s.String(), Shard: id},
		})
	}
	for i := range views {
		for _, p := range views[i].Parents {
			if _, ok := byID[p]; ok {
				views[i].ListedParents = append(views[i].ListedParents, p)
			}
		}
	}
	for _, r := range rows {
		if i, ok := byID[r.Shard]; ok {
			views[i].Row = r
			continue
		}
		views = append(views, shardView{Stream: s.String(), Shard: r.Shard, Row: r})
	}
	slices.SortFunc(views, func(a, b shardView) int { return strings.Compare(a.Shard, b.Shard) })
	return views, nil
}

// watch judges the owners of the views and every worker with a row.
func (ls *leaseSession) watch(ctx context.Context, views []shardView) (map[string]checkpointer.Liveness, error) {
	var owners []string
	for _, v := range views {
		if v.Row.ClientID != "" {
			owners = append(owners, v.Row.ClientID)
		}
	}
	lp, err := ls.fleetLeasePeriod(ctx)
	if err != nil {
		return nil, err
	}
	// The watch ends within a lease period and a few reads; the bound only guards against a
	// table that stops answering.
	wctx, cancel := context.WithTimeout(ctx, 3*lp+30*time.Second)
	defer cancel()
	return ls.table.WatchWorkers(wctx, owners, lp, ls.poll)
}

// fleetLeasePeriod is the lease period to judge the workers with: --lease-period, or the longest
// a worker row says its worker runs with (rows written since they carry it), whichever is longer.
// Longer is the safe side: a worker is judged dead later, never while it may still deliver.
func (ls *leaseSession) fleetLeasePeriod(ctx context.Context) (time.Duration, error) {
	rows, err := ls.table.Workers(ctx)
	if err != nil {
		return 0, err
	}
	lp := ls.leasePeriod
	for _, w := range rows {
		lp = max(lp, w.LeasePeriod)
	}
	return lp, nil
}

// --- list ----------------------------------------------------------------------------------

// leaseJSON is one shard of `leases list --format json`.
type leaseJSON struct {
	Stream string `json:"stream"`
	Shard  string `json:"shard"`
	State  string `json:"state"`
	Owner  string `json:"owner,omitempty"`
	// OwnerName is the name in the owner's worker row ("host:pid"); empty when the owner has
	// no row (a built-in input, a worker gone) or its row has no name (an older version).
	OwnerName      string     `json:"owner_name,omitempty"`
	OwnerAlive     *bool      `json:"owner_alive,omitempty"`
	OwnerHasRow    *bool      `json:"owner_has_worker_row,omitempty"`
	Epoch          *int64     `json:"epoch,omitempty"`
	SequenceNumber string     `json:"sequence_number,omitempty"`
	SubSequence    *uint64    `json:"sub_sequence,omitempty"`
	StartAt        *time.Time `json:"start_at,omitempty"`
	HandoffTo      string     `json:"handoff_to,omitempty"`
	HandoffEpoch   *int64     `json:"handoff_epoch,omitempty"`
	Parents        []string   `json:"parents"`
	HasRow         bool       `json:"has_row"`
}

// workerJSON is one worker of `leases list --format json`.
type workerJSON struct {
	ID        string     `json:"id"`
	Name      string     `json:"name,omitempty"` // from its worker row ("host:pid")
	Alive     bool       `json:"alive"`
	HasRow    bool       `json:"has_worker_row"`
	Heartbeat int64      `json:"heartbeat,omitempty"`
	Still     string     `json:"still_for,omitempty"`
	Shards    int        `json:"shards"`
	Streams   []string   `json:"streams,omitempty"`
	Started   *time.Time `json:"started,omitempty"`
}

func (o options) leasesListAction(c *cli.Context) error {
	ls, err := o.openLeases(c, "")
	if err != nil {
		return err
	}
	var streams []kinesisapi.Stream
	for _, s := range c.StringSlice("stream") {
		for _, part := range strings.Split(s, ",") {
			if part = strings.TrimSpace(part); part != "" {
				streams = append(streams, kinesisapi.Stream(part))
			}
		}
	}
	if len(streams) == 0 {
		return fmt.Errorf("%s: --stream is required (the streams as configured in the inputs)", c.Command.FullName())
	}
	var views []shardView
	for _, s := range streams {
		v, err := ls.streamShards(c.Context, s)
		if err != nil {
			return err
		}
		views = append(views, v...)
	}
	live, err := ls.watch(c.Context, views)
	if err != nil {
		return err
	}
	leases, workers := listing(views, live)
	if ls.format == formatJSON {
		return writeJSON(ls.out, struct {
			Leases  []leaseJSON  `json:"leases"`
			Workers []workerJSON `json:"workers"`
		}{leases, workers})
	}
	return writeListing(ls.out, leases, workers)
}

// listing builds the list output from the views and the judged workers.
func listing(views []shardView, live map[string]checkpointer.Liveness) ([]leaseJSON, []workerJSON) {
	leases := make([]leaseJSON, 0, len(views))
	owned := map[string]int{}
	for _, v := range views {
		r := v.Row
		j := leaseJSON{
			Stream: v.Stream, Shard: v.Shard, State: v.state(), Owner: r.ClientID, SequenceNumber: r.SequenceNumber,
			SubSequence: r.SubSequence, HandoffTo: r.HandoffTo, Parents: v.Parents, HasRow: r.Exists,
		}
		if j.Parents == nil {
			j.Parents = []string{}
		}
		if r.HasEpoch {
			e := r.Epoch
			j.Epoch = &e
		}
		if !r.StartAt.IsZero() {
			at := r.StartAt
			j.StartAt = &at
		}
		if r.HandoffTo != "" {
			he := r.HandoffEpoch
			j.HandoffEpoch = &he
		}
		if r.ClientID != "" {
			owned[r.ClientID]++
			l := live[r.ClientID]
			alive, hasRow := l.Alive, l.HasRow
			j.OwnerAlive, j.OwnerHasRow = &alive, &hasRow
			if l.HasRow {
				j.OwnerName = l.Row.Name
			}
		}
		leases = append(leases, j)
	}
	workers := []workerJSON{}
	for _, id := range checkpointer.SortedIDs(live) {
		l := live[id]
		w := workerJSON{ID: id, Alive: l.Alive, HasRow: l.HasRow, Shards: owned[id]}
		if l.HasRow {
			w.Heartbeat, w.Streams, w.Name = l.Row.Heartbeat, l.Row.Streams, l.Row.Name
			if !l.Row.Started.IsZero() {
				st := l.Row.Started
				w.Started = &st
			}
		}
		if !l.Alive {
			w.Still = l.Still.Round(100 * time.Millisecond).String()
		}
		workers = append(workers, w)
	}
	return leases, workers
}

func writeListing(w io.Writer, leases []leaseJSON, workers []workerJSON) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "STREAM\tSHARD\tSTATE\tOWNER\tOWNER_NAME\tALIVE\tEPOCH\tCHECKPOINT\tSUB_SEQUENCE\tSTART_AT\tHANDOFF_TO\tPARENTS")
	for _, l := range leases {
		alive := "-"
		if l.OwnerAlive != nil {
			alive = yesNo(*l.OwnerAlive)
			if !*l.OwnerHasRow {
				alive += "(no-worker-row)"
			}
		}
		epoch, sub, start := "-", "-", "-"
		if l.Epoch != nil {
			epoch = strconv.FormatInt(*l.Epoch, 10)
		}
		if l.SubSequence != nil {
			sub = strconv.FormatUint(*l.SubSequence, 10)
		}
		if l.StartAt != nil {
			start = describeStartAt(*l.StartAt)
		}
		state := l.State
		if !l.HasRow {
			state += "(no-row)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", l.Stream, l.Shard, state, orDash(l.Owner), orDash(l.OwnerName), alive, epoch,
			orDash(l.SequenceNumber), sub, start, orDash(l.HandoffTo), orDash(strings.Join(l.Parents, ",")))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "WORKER\tNAME\tALIVE\tHEARTBEAT\tSHARDS\tSTREAMS\tSTARTED")
	for _, wk := range workers {
		alive := yesNo(wk.Alive)
		if !wk.Alive {
			alive += "(still-" + wk.Still + ")"
		}
		hb, started := "-", "-"
		if wk.HasRow {
			hb = strconv.FormatInt(wk.Heartbeat, 10)
		} else {
			alive += "(no-worker-row)"
		}
		if wk.Started != nil {
			started = wk.Started.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\n", wk.ID, orDash(wk.Name), alive, hb, wk.Shards, orDash(strings.Join(wk.Streams, ",")), started)
	}
	return tw.Flush()
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// describeStartAt shows a StartAt, "oldest" for the one reset --to oldest writes.
func describeStartAt(t time.Time) string {
	if !t.After(oldestStart) {
		return "oldest"
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// describeRow says where the next owner of the shard starts, as the inputs read the row.
func describeRow(v shardView) string {
	r := v.Row
	switch {
	case !r.Exists:
		return "no row (the inputs' start_from_oldest / start_timestamp)"
	case r.Finished:
		return "finished"
	case r.SequenceNumber != "" && r.SubSequence != nil:
		return fmt.Sprintf("after %s/%d", r.SequenceNumber, *r.SubSequence)
	case r.SequenceNumber != "":
		return "after " + r.SequenceNumber
	case v.isChild():
		return "oldest (a child of a listed parent)"
	case !r.StartAt.IsZero():
		if !r.StartAt.After(oldestStart) {
			return "oldest"
		}
		return "at " + r.StartAt.UTC().Format(time.RFC3339Nano)
	}
	return "no checkpoint (the inputs' start_from_oldest / start_timestamp)"
}

// describePlacement says where the next owner starts after p.
func describePlacement(v shardView, p checkpointer.Placement) string {
	r := checkpointer.Lease{Exists: true, SequenceNumber: p.SequenceNumber, SubSequence: p.SubSequence, StartAt: p.StartAt, Finished: p.Finished}
	return describeRow(shardView{ListedParents: v.ListedParents, Row: r})
}

// shardsOf keeps the views of the named shards (all when names is empty); a name the stream does
// not list (and the table has no row for) is an error.
func shardsOf(views []shardView, names []string, s kinesisapi.Stream) ([]shardView, error) {
	if len(names) == 0 {
		return views, nil
	}
	var out []shardView
	for _, n := range names {
		i := slices.IndexFunc(views, func(v shardView) bool { return v.Shard == n })
		if i < 0 {
			return nil, fmt.Errorf("shard %q is not a shard of stream %s", n, s)
		}
		if !slices.ContainsFunc(out, func(v shardView) bool { return v.Shard == n }) {
			out = append(out, views[i])
		}
	}
	return out, nil
}

// shardNames splits repeated and comma-separated --shard values.
func shardNames(c *cli.Context) []string {
	var names []string
	for _, s := range c.StringSlice("shard") {
		for _, part := range strings.Split(s, ",") {
			if part = strings.TrimSpace(part); part != "" {
				names = append(names, part)
			}
		}
	}
	return names
}
