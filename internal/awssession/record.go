package awssession

import (
	"context"
	"sync/atomic"

	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/smithy-go/middleware"
)

// Call is one API operation made by a client built from a Session, as RecordOperations reports
// it.
type Call struct {
	Service   string // the SDK's service id: "Kinesis", "DynamoDB"
	Operation string // the API operation: "GetRecords", "PutItem"
	// Err is what the call returned (after the SDK's retries). Nil means the service answered
	// with success, which tells a test that a real server took part.
	Err error
}

// recorder is the function RecordOperations set; nil (the production case) adds nothing to the
// clients.
var recorder atomic.Pointer[func(Call)]

// RecordOperations makes every client built from a Session made after this call report each API
// operation it makes to f, once per call (not per retry), when the call returns. f must be safe
// for concurrent use. nil stops the recording of Sessions made afterwards.
//
// For tests only: the IAM check (internal/awsdefs) uses it to learn which actions the components
// need. Production code never calls it, and without it FromParsed builds exactly the clients it
// always did.
func RecordOperations(f func(Call)) {
	if f == nil {
		recorder.Store(nil)
		return
	}
	recorder.Store(&f)
}

// recordingOption returns the APIOptions entry that reports calls to f.
func recordingOption(f func(Call)) func(*middleware.Stack) error {
	return func(stack *middleware.Stack) error {
		// Initialize runs once per operation, before the retry loop; the service id and the
		// operation name are in the context by then.
		return stack.Initialize.Add(middleware.InitializeMiddlewareFunc("benthos-kinesis/RecordOperation",
			func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
				out, md, err := next.HandleInitialize(ctx, in)
				f(Call{Service: awsmiddleware.GetServiceID(ctx), Operation: awsmiddleware.GetOperationName(ctx), Err: err})
				return out, md, err
			}), middleware.Before)
	}
}
