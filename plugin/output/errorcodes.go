package output

import (
	"errors"
	"fmt"
	"strings"

	"github.com/aws/smithy-go"
)

// The tables of what the output does with each error Kinesis answers, kept
// apart from the writer so that they read, and are tested, on their own.

// recordAction is what becomes of a record that failed.
type recordAction int

const (
	// retryRecord: a passing failure; the record is retried after its backoff.
	retryRecord recordAction = iota
	// retryThrottled: its shard was over its limit; the record is retried
	// and the shard slowed down.
	retryThrottled
	// failRecord: retrying the same record cannot help; its message fails.
	failRecord
)

func (a recordAction) String() string {
	switch a {
	case retryRecord:
		return "retry"
	case retryThrottled:
		return "retry, throttled"
	case failRecord:
		return "fail"
	}
	return fmt.Sprintf("recordAction(%d)", int(a))
}

// recordCodeAction classifies the ErrorCode of one record of a PutRecords
// answer.
func recordCodeAction(code string) recordAction {
	switch code {
	case "ProvisionedThroughputExceededException":
		return retryThrottled
	case "InternalFailure", "ServiceUnavailable", "KMSThrottlingException":
		return retryRecord
	}
	// KMS access and state errors, and codes this output does not know.
	return failRecord
}

// permanentRequestCode says whether a call that failed with this API error
// code can never succeed as it is: a missing stream, credentials or rights,
// a request Kinesis refuses, a KMS key that is not usable. Everything else
// (throttling of the call, 500s, codes this output does not know) is retried.
func permanentRequestCode(code string) bool {
	switch code {
	case "ResourceNotFoundException",
		"AccessDeniedException", "UnrecognizedClientException",
		"InvalidSignatureException", "IncompleteSignature",
		"MissingAuthenticationToken", "ExpiredTokenException",
		"ValidationException", "InvalidArgumentException":
		return true
	}
	return strings.HasPrefix(code, "KMS") && code != "KMSThrottlingException"
}

// permanentRequestError says whether a failed PutRecords or PutRecord call
// to stream can never succeed as it is, and if so returns the error to report
// for its records; nil means retry (network trouble too).
func permanentRequestError(stream string, err error) error {
	var apiErr smithy.APIError
	if !errors.As(err, &apiErr) || !permanentRequestCode(apiErr.ErrorCode()) {
		return nil
	}
	if apiErr.ErrorCode() == "ResourceNotFoundException" {
		return fmt.Errorf("stream %s does not exist: %w", stream, err)
	}
	return fmt.Errorf("put records to %s: %w", stream, err)
}

// recordCodeOfCallError maps the error of a PutRecord call to the ErrorCode
// PutRecords would have answered for that record, when it is one of those:
// so a record sent alone is booked as one of a PutRecords answer.
func recordCodeOfCallError(err error) (code, message string, ok bool) {
	var apiErr smithy.APIError
	if !errors.As(err, &apiErr) {
		return "", "", false
	}
	switch code := apiErr.ErrorCode(); {
	case code == "ProvisionedThroughputExceededException", code == "InternalFailure",
		code == "ServiceUnavailable", strings.HasPrefix(code, "KMS"):
		return code, apiErr.ErrorMessage(), true
	}
	return "", "", false
}
