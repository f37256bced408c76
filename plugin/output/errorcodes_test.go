package output

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestRecordCodeAction(t *testing.T) {
	for _, c := range []struct {
		code string
		want recordAction
	}{
		{"ProvisionedThroughputExceededException", retryThrottled},
		{"InternalFailure", retryRecord},
		{"ServiceUnavailable", retryRecord},
		{"KMSThrottlingException", retryRecord},
		{"KMSAccessDeniedException", failRecord},
		{"KMSDisabledException", failRecord},
		{"KMSInvalidStateException", failRecord},
		{"KMSNotFoundException", failRecord},
		{"KMSOptInRequired", failRecord},
		{"SomethingNewException", failRecord},
		{"", failRecord},
	} {
		if got := recordCodeAction(c.code); got != c.want {
			t.Errorf("recordCodeAction(%q) = %v, want %v", c.code, got, c.want)
		}
	}
}

func TestPermanentRequestError(t *testing.T) {
	for _, c := range []struct {
		err  error
		want string // "" for retry
	}{
		{apiError("ResourceNotFoundException"), "stream s does not exist: api error ResourceNotFoundException"},
		{fmt.Errorf("wrapped: %w", apiError("ResourceNotFoundException")), "stream s does not exist: wrapped"},
		{apiError("AccessDeniedException"), "put records to s: api error AccessDeniedException"},
		{apiError("UnrecognizedClientException"), "put records to s"},
		{apiError("InvalidSignatureException"), "put records to s"},
		{apiError("IncompleteSignature"), "put records to s"},
		{apiError("MissingAuthenticationToken"), "put records to s"},
		{apiError("ExpiredTokenException"), "put records to s"},
		{apiError("ValidationException"), "put records to s"},
		{apiError("InvalidArgumentException"), "put records to s"},
		{apiError("KMSAccessDeniedException"), "put records to s"},
		{apiError("KMSDisabledException"), "put records to s"},
		{apiError("KMSThrottlingException"), ""},
		{apiError("ProvisionedThroughputExceededException"), ""},
		{apiError("LimitExceededException"), ""},
		{apiError("InternalFailure"), ""},
		{apiError("ServiceUnavailable"), ""},
		{apiError("SomethingNewException"), ""},
		{errors.New("connection reset by peer"), ""},
	} {
		got := permanentRequestError("s", c.err)
		switch {
		case c.want == "" && got != nil:
			t.Errorf("%v: permanent (%v), want retried", c.err, got)
		case c.want != "" && (got == nil || !strings.Contains(got.Error(), c.want)):
			t.Errorf("%v: %v, want permanent saying %q", c.err, got, c.want)
		case got != nil && !errors.Is(got, c.err):
			t.Errorf("%v: %v does not wrap the cause", c.err, got)
		}
	}
}

func TestRecordCodeOfCallError(t *testing.T) {
	for _, c := range []struct {
		err  error
		code string // "" when the error is not a record's
	}{
		{apiError("ProvisionedThroughputExceededException"), "ProvisionedThroughputExceededException"},
		{apiError("InternalFailure"), "InternalFailure"},
		{apiError("ServiceUnavailable"), "ServiceUnavailable"},
		{apiError("KMSThrottlingException"), "KMSThrottlingException"},
		{apiError("KMSAccessDeniedException"), "KMSAccessDeniedException"},
		{fmt.Errorf("op: %w", apiError("InternalFailure")), "InternalFailure"},
		{apiError("ValidationException"), ""},
		{apiError("ResourceNotFoundException"), ""},
		{apiError("LimitExceededException"), ""},
		{errors.New("connection reset by peer"), ""},
	} {
		code, msg, ok := recordCodeOfCallError(c.err)
		if ok != (c.code != "") || code != c.code {
			t.Errorf("%v: code %q ok %v, want %q", c.err, code, ok, c.code)
		}
		if ok && msg != "scripted "+c.code {
			t.Errorf("%v: message %q, want the error's own", c.err, msg)
		}
	}
}
