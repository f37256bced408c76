package awsdefs

import (
	"slices"
	"strings"
	"sync"

	"github.com/benthos-kinesis/benthos-kinesis/internal/awssession"
)

// Recorder collects the API operations made by clients built through awssession (every client
// of the components) while it records.
type Recorder struct {
	mu    sync.Mutex
	calls map[string]*callStats // by IAM action
	// answered counts, per SDK service id, the calls a server answered with success.
	answered map[string]int
}

type callStats struct{ calls, answered int }

// NewRecorder returns an empty Recorder; Add feeds it (Start connects it to awssession).
func NewRecorder() *Recorder {
	return &Recorder{calls: make(map[string]*callStats), answered: make(map[string]int)}
}

// Start returns a Recorder that sees every call of the clients built by awssession.FromParsed from
// now until Stop. Only one records at a time (the hook is process-wide).
func Start() *Recorder {
	r := NewRecorder()
	awssession.RecordOperations(r.Add)
	return r
}

// Stop ends the recording of clients built from now on.
func (r *Recorder) Stop() { awssession.RecordOperations(nil) }

// Add records one call.
func (r *Recorder) Add(c awssession.Call) {
	a := Action(c.Service, c.Operation)
	r.mu.Lock()
	defer r.mu.Unlock()
	st := r.calls[a]
	if st == nil {
		st = &callStats{}
		r.calls[a] = st
	}
	st.calls++
	if c.Err == nil {
		st.answered++
		r.answered[c.Service]++
	}
}

// Actions returns the IAM action of every operation called, sorted. A call that failed counts:
// it needed the permission as much as one that succeeded.
func (r *Recorder) Actions() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]string, 0, len(r.calls))
	for a := range r.calls {
		out = append(out, a)
	}
	slices.Sort(out)
	return out
}

// Answered returns how many calls of the SDK service id (such as "Kinesis") were answered with
// success.
func (r *Recorder) Answered(service string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.answered[service]
}

// Action returns the IAM action of an SDK operation: the service id lower-cased without spaces
// ("Kinesis" → "kinesis", "DynamoDB" → "dynamodb", which is the IAM prefix of both) and the
// operation name, which IAM uses as it is.
func Action(serviceID, operation string) string {
	return strings.ToLower(strings.ReplaceAll(serviceID, " ", "")) + ":" + operation
}
