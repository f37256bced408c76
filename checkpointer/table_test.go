package checkpointer

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go"

	"github.com/benthos-kinesis/benthos-kinesis/internal/testenv"
)

// deleteLater deletes a table this test made through EnsureTable.
func deleteLater(t *testing.T, c *dynamodb.Client, name string) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		for {
			_, err := c.DeleteTable(ctx, &dynamodb.DeleteTableInput{TableName: aws.String(name)})
			var notFound *types.ResourceNotFoundException
			var inUse *types.ResourceInUseException
			switch {
			case err == nil, errors.As(err, &notFound):
				return
			case errors.As(err, &inUse) && ctx.Err() == nil:
				time.Sleep(25 * time.Millisecond)
			default:
				t.Errorf("cleanup: delete table %s: %v", name, err)
				return
			}
		}
	})
}

func TestEnsureTableMissing(t *testing.T) {
	c := testenv.DynamoDB(t)
	name := testenv.UniqueName(t, "missing")
	tbl, err := New(c, name, "w1")
	if err != nil {
		t.Fatal(err)
	}
	err = tbl.EnsureTable(ctxOf(t), false, "", 0, 0)
	want := `dynamodb table "` + name + `" does not exist (set dynamodb.create: true to create it)`
	if err == nil || err.Error() != want {
		t.Fatalf("err = %v, want %q", err, want)
	}
}

func TestEnsureTableCreate(t *testing.T) {
	tests := []struct {
		name     string
		mode     string
		rcu, wcu int64
		want     types.BillingMode
	}{
		{"default billing", "", 0, 0, types.BillingModePayPerRequest},
		{"pay per request", "PAY_PER_REQUEST", 0, 0, types.BillingModePayPerRequest},
		{"provisioned", "PROVISIONED", 2, 3, types.BillingModeProvisioned},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := testenv.DynamoDB(t)
			name := testenv.UniqueName(t, "create")
			deleteLater(t, c, name)
			tbl, err := New(c, name, "w1")
			if err != nil {
				t.Fatal(err)
			}
			if err := tbl.EnsureTable(ctxOf(t), true, tc.mode, tc.rcu, tc.wcu); err != nil {
				t.Fatal(err)
			}
			out, err := c.DescribeTable(ctxOf(t), &dynamodb.DescribeTableInput{TableName: aws.String(name)})
			if err != nil {
				t.Fatal(err)
			}
			d := out.Table
			if d.TableStatus != types.TableStatusActive {
				t.Errorf("status %s", d.TableStatus)
			}
			if tc.want == types.BillingModeProvisioned {
				if p := d.ProvisionedThroughput; p == nil || aws.ToInt64(p.ReadCapacityUnits) != 2 || aws.ToInt64(p.WriteCapacityUnits) != 3 {
					t.Errorf("throughput %+v", p)
				}
			} else if b := d.BillingModeSummary; b != nil && b.BillingMode != tc.want {
				t.Errorf("billing mode %s", b.BillingMode)
			}
			// It now exists: no create needed, and the table works.
			if err := tbl.EnsureTable(ctxOf(t), false, "", 0, 0); err != nil {
				t.Fatal(err)
			}
			if _, err := tbl.Claim(ctxOf(t), st, sh, Lease{}); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// Workers of a fleet started at once all create the table; the losers wait for it.
func TestEnsureTableConcurrentCreate(t *testing.T) {
	c := testenv.DynamoDB(t)
	name := testenv.UniqueName(t, "race")
	deleteLater(t, c, name)
	var wg sync.WaitGroup
	errs := make([]error, 5)
	for i := range errs {
		tbl, err := New(c, name, "w")
		if err != nil {
			t.Fatal(err)
		}
		wg.Go(func() { errs[i] = tbl.EnsureTable(ctxOf(t), true, "", 0, 0) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}

func TestEnsureTableBadArguments(t *testing.T) {
	c := testenv.DynamoDB(t)
	name := testenv.UniqueName(t, "bad")
	deleteLater(t, c, name)
	tbl, err := New(c, name, "w1")
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range []struct {
		mode     string
		rcu, wcu int64
	}{{"ON_DEMAND", 0, 0}, {"PROVISIONED", 0, 5}, {"PROVISIONED", 5, 0}} {
		err := tbl.EnsureTable(ctxOf(t), true, a.mode, a.rcu, a.wcu)
		if err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%+v: err = %v, want one naming the table", a, err)
		}
	}
	if _, err := c.DescribeTable(ctxOf(t), &dynamodb.DescribeTableInput{TableName: aws.String(name)}); err == nil {
		t.Error("a table was created from bad arguments")
	}
}

func TestEnsureTableWrongKeySchema(t *testing.T) {
	tests := []struct {
		name  string
		attrs []types.AttributeDefinition
		keys  []types.KeySchemaElement
		want  string
	}{
		{
			"hash only",
			[]types.AttributeDefinition{{AttributeName: aws.String("id"), AttributeType: types.ScalarAttributeTypeS}},
			[]types.KeySchemaElement{{AttributeName: aws.String("id"), KeyType: types.KeyTypeHash}},
			"has hash key id (S), no range key",
		},
		{
			"range key of type N",
			[]types.AttributeDefinition{
				{AttributeName: aws.String("StreamID"), AttributeType: types.ScalarAttributeTypeS},
				{AttributeName: aws.String("ShardID"), AttributeType: types.ScalarAttributeTypeN},
			},
			[]types.KeySchemaElement{
				{AttributeName: aws.String("StreamID"), KeyType: types.KeyTypeHash},
				{AttributeName: aws.String("ShardID"), KeyType: types.KeyTypeRange},
			},
			"has hash key StreamID (S), range key ShardID (N)",
		},
		{
			"keys swapped",
			[]types.AttributeDefinition{
				{AttributeName: aws.String("StreamID"), AttributeType: types.ScalarAttributeTypeS},
				{AttributeName: aws.String("ShardID"), AttributeType: types.ScalarAttributeTypeS},
			},
			[]types.KeySchemaElement{
				{AttributeName: aws.String("ShardID"), KeyType: types.KeyTypeHash},
				{AttributeName: aws.String("StreamID"), KeyType: types.KeyTypeRange},
			},
			"has hash key ShardID (S), range key StreamID (S)",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := testenv.DynamoDB(t)
			name := testenv.UniqueName(t, "schema")
			deleteLater(t, c, name)
			if _, err := c.CreateTable(ctxOf(t), &dynamodb.CreateTableInput{
				TableName: aws.String(name), AttributeDefinitions: tc.attrs, KeySchema: tc.keys,
				BillingMode: types.BillingModePayPerRequest,
			}); err != nil {
				t.Fatal(err)
			}
			if err := testenv.WaitTableActive(ctxOf(t), c, name); err != nil {
				t.Fatal(err)
			}
			tbl, err := New(c, name, "w1")
			if err != nil {
				t.Fatal(err)
			}
			err = tbl.EnsureTable(ctxOf(t), true, "", 0, 0)
			if err == nil || !strings.Contains(err.Error(), name) || !strings.Contains(err.Error(), tc.want) ||
				!strings.Contains(err.Error(), "needs hash key StreamID (S) and range key ShardID (S)") {
				t.Fatalf("err = %v, want one naming the table and %q", err, tc.want)
			}
		})
	}
}

// creatingAPI answers every DescribeTable with a table that stays CREATING.
type creatingAPI struct {
	API
	calls atomic.Int64
}

func (c *creatingAPI) DescribeTable(context.Context, *dynamodb.DescribeTableInput, ...func(*dynamodb.Options)) (*dynamodb.DescribeTableOutput, error) {
	c.calls.Add(1)
	return &dynamodb.DescribeTableOutput{Table: &types.TableDescription{TableStatus: types.TableStatusCreating}}, nil
}

func TestEnsureTableWaitIsBoundedByContext(t *testing.T) {
	api := &creatingAPI{}
	tbl, err := New(api, "slow", "w1")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	err = tbl.EnsureTable(ctx, true, "", 0, 0)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), `"slow"`) {
		t.Fatalf("err = %v, want a deadline error naming the table", err)
	}
	if n := api.calls.Load(); n < 3 {
		t.Fatalf("DescribeTable called %d times, want polling", n)
	}
}

// The default retryer of a DynamoDB client (dynamodb.New, dynamodb.NewFromConfig) treats
// DynamoDB's throttling errors as retryable: the Table does not retry on its own.
func TestDefaultRetryerRetriesThrottling(t *testing.T) {
	clients := map[string]*dynamodb.Client{
		"New":           dynamodb.New(dynamodb.Options{Region: "us-east-1"}),
		"NewFromConfig": dynamodb.NewFromConfig(aws.Config{Region: "us-east-1"}),
	}
	for name, c := range clients {
		r := c.Options().Retryer
		for _, code := range []string{"ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded"} {
			if !r.IsErrorRetryable(&smithy.GenericAPIError{Code: code}) {
				t.Errorf("%s: %s is not retryable", name, code)
			}
		}
		if r.IsErrorRetryable(&types.ConditionalCheckFailedException{}) {
			t.Errorf("%s: a failed condition would be retried", name)
		}
	}
}

// End to end: a server that throttles twice, then accepts.
func TestThrottledWriteIsRetried(t *testing.T) {
	for _, code := range []string{"ProvisionedThroughputExceededException", "ThrottlingException"} {
		t.Run(code, func(t *testing.T) {
			var calls atomic.Int64
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/x-amz-json-1.0")
				if calls.Add(1) <= 2 {
					w.WriteHeader(http.StatusBadRequest)
					_, _ = w.Write([]byte(`{"__type":"com.amazonaws.dynamodb.v20120810#` + code + `","message":"slow down"}`))
					return
				}
				_, _ = w.Write([]byte(`{}`))
			}))
			defer srv.Close()
			retryer := func(attempts int) aws.Retryer {
				return retry.NewStandard(func(o *retry.StandardOptions) {
					o.MaxAttempts = attempts
					// Only the waits are shortened; what is retryable stays the default.
					o.Backoff = retry.BackoffDelayerFunc(func(int, error) (time.Duration, error) { return 0, nil })
				})
			}
			client := func(attempts int) *dynamodb.Client {
				return dynamodb.New(dynamodb.Options{
					Region:                "us-east-1",
					BaseEndpoint:          aws.String(srv.URL),
					Credentials:           credentials.NewStaticCredentialsProvider("test", "test", ""),
					Retryer:               retryer(attempts),
					AccountIDEndpointMode: aws.AccountIDEndpointModeDisabled,
				})
			}
			tbl, err := New(client(3), "leases", "w1")
			if err != nil {
				t.Fatal(err)
			}
			if err := tbl.Heartbeat(t.Context(), 1, nil); err != nil {
				t.Fatal(err)
			}
			if n := calls.Load(); n != 3 {
				t.Fatalf("%d requests, want 3", n)
			}
			// Without retries the throttling error surfaces, naming the table; it is neither
			// ErrLeaseLost nor ErrClaimConflict.
			calls.Store(0)
			tbl, _ = New(client(1), "leases", "w1")
			_, err = tbl.Claim(t.Context(), st, sh, Lease{})
			if err == nil || !strings.Contains(err.Error(), code) || !strings.Contains(err.Error(), `"leases"`) ||
				errors.Is(err, ErrClaimConflict) {
				t.Fatalf("err = %v", err)
			}
		})
	}
}
