package faultproxy

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Service is the AWS service behind a proxy; it decides the error bodies the proxy fakes.
type Service int

// Services a proxy can stand in front of.
const (
	Kinesis Service = iota
	DynamoDB
)

func (s Service) String() string {
	switch s {
	case Kinesis:
		return "Kinesis"
	case DynamoDB:
		return "DynamoDB"
	default:
		return "Service(" + strconv.Itoa(int(s)) + ")"
	}
}

// contentType is the protocol's content type: AWS JSON 1.1 for Kinesis, 1.0 for DynamoDB.
func (s Service) contentType() string {
	if s == DynamoDB {
		return "application/x-amz-json-1.0"
	}
	return "application/x-amz-json-1.1"
}

// Faults are the faults a proxy injects. The zero value injects none.
type Faults struct {
	// Latency is added before each matching request is answered or forwarded.
	Latency time.Duration
	// ThrottleRate is the fraction of matching requests answered with a throttling error.
	ThrottleRate float64
	// ServerErrorRate is the fraction answered 500 InternalFailure or 503 ServiceUnavailable.
	ServerErrorRate float64
	// ResetRate is the fraction whose connection is reset (TCP RST) before any answer.
	ResetRate float64
	// ErrorRate is the fraction answered with the AWS error ErrorCode (see ErrorStatus).
	ErrorRate float64
	// ErrorCode is the error code of the ErrorRate answers, as AWS spells it:
	// "KMSThrottlingException", "ExpiredIteratorException", "InternalFailure"...
	ErrorCode string
	// ErrorStatus is the HTTP status of the ErrorRate answers; 0 is the code's usual one:
	// 500 for InternalFailure, 503 for ServiceUnavailable, 400 for any other code.
	ErrorStatus int
	// RejectCredentials answers every matching request 400 UnrecognizedClientException.
	RejectCredentials bool
	// Backlog, when positive, makes every GetRecords answer that carries records report
	// MillisBehindLatest = Backlog (whole milliseconds), as Kinesis does to a reader that is
	// behind. It is a rewrite of forwarded answers, not a drawn fault: it ignores Operations.
	Backlog time.Duration
	// Operations limits the faults to these operations, by name ("GetRecords") or full
	// X-Amz-Target ("Kinesis_20131202.GetRecords"); empty means all operations.
	Operations []string
	// Seed seeds the random source that applies the rates; SetFaults reseeds it.
	Seed uint64
}

// validate reports a Faults value no proxy can apply: rates outside [0, 1] or summing to more
// than 1 (they split one draw), or a negative latency.
func (f Faults) validate() error {
	sum := 0.0
	for _, r := range []struct {
		name string
		v    float64
	}{{"ThrottleRate", f.ThrottleRate}, {"ServerErrorRate", f.ServerErrorRate}, {"ResetRate", f.ResetRate}, {"ErrorRate", f.ErrorRate}} {
		if math.IsNaN(r.v) || r.v < 0 || r.v > 1 {
			return fmt.Errorf("%s %v is not in [0, 1]", r.name, r.v)
		}
		sum += r.v
	}
	if sum > 1+1e-9 {
		return fmt.Errorf("ThrottleRate + ServerErrorRate + ResetRate + ErrorRate = %v is more than 1", sum)
	}
	if f.Latency < 0 {
		return fmt.Errorf("negative Latency %v", f.Latency)
	}
	if f.Backlog < 0 {
		return fmt.Errorf("negative Backlog %v", f.Backlog)
	}
	if f.ErrorRate > 0 && f.ErrorCode == "" {
		return fmt.Errorf("ErrorRate %v without an ErrorCode", f.ErrorRate)
	}
	if f.ErrorStatus != 0 && (f.ErrorStatus < 400 || f.ErrorStatus > 599) {
		return fmt.Errorf("ErrorStatus %d is not an error status (400-599)", f.ErrorStatus)
	}
	return nil
}

// Stats counts what a proxy did with the requests it received.
type Stats struct {
	Forwarded    int // passed on to the target
	Throttled    int // answered with a throttling error
	ServerErrors int // answered 500 or 503
	Resets       int // connection reset by ResetRate
	Held         int // held by a partition (requests, and answers of forwarded requests)
	Rejected     int // answered UnrecognizedClientException (RejectCredentials)
	Errors       int // answered with ErrorCode (ErrorRate)
	Backlogged   int // GetRecords answers rewritten to report a backlog (Backlog)
}

// fake is an error answer: status, error code and message.
type fake struct {
	status int
	code   string
	msg    string
}

// Error codes and messages of the faked answers.
const (
	codeThroughput    = "ProvisionedThroughputExceededException"
	codeThrottling    = "ThrottlingException"
	codeInternal      = "InternalFailure"
	codeUnavailable   = "ServiceUnavailable"
	codeUnrecognized  = "UnrecognizedClientException"
	msgUnrecognized   = "The security token included in the request is invalid."
	msgDDBThroughput  = "The level of configured provisioned throughput for the table was exceeded. Consider increasing your provisioning level with the UpdateTable API."
	msgDDBThrottling  = "Rate of requests exceeds the allowed throughput."
	msgInternal       = "The request processing has failed because of an unknown error, exception or failure."
	msgUnavailable    = "The service is unavailable. Please try again later."
	injectedSuffix    = " (injected by faultproxy)"
	kinesisThroughput = "Rate exceeded for shard in stream under account 000000000000."
)

// throttle returns the n-th (from 0) throttling answer of service s.
func throttle(s Service, n uint64) fake {
	if s == DynamoDB {
		if n%2 == 0 {
			return fake{http.StatusBadRequest, codeThroughput, msgDDBThroughput + injectedSuffix}
		}
		return fake{http.StatusBadRequest, codeThrottling, msgDDBThrottling + injectedSuffix}
	}
	return fake{http.StatusBadRequest, codeThroughput, kinesisThroughput + injectedSuffix}
}

// serverError returns the n-th (from 0) 5xx answer.
func serverError(n uint64) fake {
	if n%2 == 0 {
		return fake{http.StatusInternalServerError, codeInternal, msgInternal + injectedSuffix}
	}
	return fake{http.StatusServiceUnavailable, codeUnavailable, msgUnavailable + injectedSuffix}
}

// Messages of the codes ErrorCode is meant for, shaped like AWS's; other codes get a generic one.
var errorMessages = map[string]string{
	codeInternal:                msgInternal,
	codeUnavailable:             msgUnavailable,
	"ExpiredIteratorException":  "Iterator expired. The iterator was created at time Sun Dec 06 10:00:00 UTC 2026 while right now it is Sun Dec 06 10:05:01 UTC 2026 which is further in the future than the tolerated delay of 300000 milliseconds.",
	"KMSThrottlingException":    "The request was denied due to request throttling. For more information about throttling, see Limits in the AWS Key Management Service Developer Guide.",
	"KMSAccessDeniedException":  "The ciphertext references a key that doesn't exist or that you don't have access to.",
	"KMSDisabledException":      "The request was rejected because the specified customer master key (CMK) isn't enabled.",
	"ResourceNotFoundException": "Stream chaos under account 000000000000 not found.",
	"KMSNotFoundException":      "The request was rejected because the specified entity or resource can't be found.",
	"KMSInvalidStateException":  "The request was rejected because the state of the specified resource isn't valid for this request.",
}

// codedError returns the answer of ErrorRate.
func codedError(code string, status int) fake {
	if status == 0 {
		switch code {
		case codeInternal:
			status = http.StatusInternalServerError
		case codeUnavailable:
			status = http.StatusServiceUnavailable
		default:
			status = http.StatusBadRequest
		}
	}
	msg, ok := errorMessages[code]
	if !ok {
		msg = code
	}
	return fake{status, code, msg + injectedSuffix}
}

func rejected() fake {
	return fake{http.StatusBadRequest, codeUnrecognized, msgUnrecognized}
}

// write answers w with f for service s.
func (f fake) write(w http.ResponseWriter, s Service, requestID string) {
	body, _ := json.Marshal(struct {
		Type    string `json:"__type"`
		Message string `json:"message"`
	}{f.code, f.msg}) // cannot fail: two strings
	h := w.Header()
	h.Set("Content-Type", s.contentType())
	h.Set("X-Amzn-Errortype", f.code)
	h.Set("X-Amzn-Requestid", requestID)
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(f.status)
	_, _ = w.Write(body)
}

// operation returns the operation name of an X-Amz-Target value: what follows the last dot.
func operation(target string) string {
	return target[strings.LastIndexByte(target, '.')+1:]
}
