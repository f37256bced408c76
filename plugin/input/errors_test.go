package input

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/benthos-kinesis/benthos-kinesis/internal/testenv"
)

// Connect fails with an error that names what is missing.
func TestIntegrationConnectErrorsNameTheCause(t *testing.T) {
	kc := testenv.Kinesalite(t)
	stream := testenv.CreateStream(t, kc, 1)
	table := testenv.CreateTable(t, testenv.DynamoDB(t))
	missingStream := testenv.UniqueName(t, "nostream")
	missingTable := testenv.UniqueName(t, "notable")
	for _, c := range []struct {
		name, stream, table, extra, want string
	}{
		{"missing stream", missingStream, table, "", "stream " + missingStream + " does not exist"},
		{"missing table", stream, missingTable, "", fmt.Sprintf("dynamodb table %q does not exist (set dynamodb.create: true to create it)", missingTable)},
	} {
		t.Run(c.name, func(t *testing.T) {
			in := testInput(t, workerYAML(t, c.stream, c.table)+c.extra, nil, false)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			err := in.Connect(ctx)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Connect: %v, want an error saying %q", err, c.want)
			}
			_ = in.Close(ctx)
		})
	}
}
