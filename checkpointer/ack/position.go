package ack

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// WholeRecord is the sub-sequence number of a [Position] that stands for a whole Kinesis record
// rather than one user record inside a KPL aggregate.
//
// A batch that ends with a plain (not aggregated) record has the position
// (its sequence number, WholeRecord). A batch that ends inside an aggregate has
// (the aggregate's sequence number, index of its last user record in the aggregate). A batch that
// ends with the last user record of an aggregate should use WholeRecord: the checkpoint is then
// a plain sequence number and a restart resumes after the aggregate instead of re-reading it.
//
// WholeRecord is the largest uint64, so a whole record orders after every user record it
// contains: having consumed the record means having consumed each of its user records. In the
// lease table a position with WholeRecord is written without a SubSequence attribute, and a row
// without one is read back as WholeRecord (see [Position.SubSequence]).
const WholeRecord uint64 = math.MaxUint64

// MaxSequenceNumberDigits is the longest sequence number accepted, in significant digits: the
// Kinesis API pattern for sequence numbers is 0|([1-9]\d{0,128}). Real sequence numbers have
// about 56 digits (some 186 bits), so they do not fit in 64 or even 128 bits.
const MaxSequenceNumberDigits = 129

// ErrInvalidSequenceNumber is returned (wrapped) by [ParsePosition] and [ParseSequenceNumber].
var ErrInvalidSequenceNumber = errors.New("invalid sequence number")

// Position is a place in a shard: a Kinesis sequence number and a sub-sequence number (the index
// of a user record inside a KPL aggregate, or [WholeRecord]). Positions are ordered by sequence
// number, compared as non-negative integers, then by sub-sequence number.
//
// The zero Position means "no position"; it orders before every parsed position. Compare
// positions with [Position.Compare], not ==: "007" and "7" are the same sequence number.
type Position struct {
	seq string // decimal digits, exactly as parsed; "" only in the zero Position
	sub uint64
}

// ParseSequenceNumber returns the position of the whole record with sequence number seq.
func ParseSequenceNumber(seq string) (Position, error) {
	return ParsePosition(seq, WholeRecord)
}

// ParsePosition returns the position of user record sub of the record with sequence number seq
// (sub = [WholeRecord] for the whole record). seq must be a non-empty string of ASCII decimal
// digits with at most [MaxSequenceNumberDigits] significant digits; leading zeros are allowed
// and kept, so [Position.SequenceNumber] gives seq back unchanged.
func ParsePosition(seq string, sub uint64) (Position, error) {
	if seq == "" {
		return Position{}, fmt.Errorf("%w: empty", ErrInvalidSequenceNumber)
	}
	for i := 0; i < len(seq); i++ {
		if c := seq[i]; c < '0' || c > '9' {
			return Position{}, fmt.Errorf("%w %s: byte %d is not a decimal digit", ErrInvalidSequenceNumber, quote(seq), i)
		}
	}
	if n := len(significant(seq)); n > MaxSequenceNumberDigits {
		return Position{}, fmt.Errorf("%w %s: %d digits, more than %d", ErrInvalidSequenceNumber, quote(seq), n, MaxSequenceNumberDigits)
	}
	return Position{seq: seq, sub: sub}, nil
}

// quote quotes s for an error message, shortened when long.
func quote(s string) string {
	const limit = 64
	if len(s) > limit {
		return strconv.Quote(s[:limit]) + "..."
	}
	return strconv.Quote(s)
}

// significant strips the leading zeros of a digit string, keeping one digit for zero.
func significant(s string) string {
	i := 0
	for i < len(s)-1 && s[i] == '0' {
		i++
	}
	return s[i:]
}

// Compare returns -1, 0 or +1 as p is before, equal to or after q. It does not allocate.
func (p Position) Compare(q Position) int {
	a, b := significant(p.seq), significant(q.seq)
	if len(a) != len(b) {
		// Same base, no leading zeros: the longer number is the larger.
		return cmp.Compare(len(a), len(b))
	}
	if c := strings.Compare(a, b); c != 0 {
		return c
	}
	return cmp.Compare(p.sub, q.sub)
}

// IsZero reports whether p is the zero Position ("no position").
func (p Position) IsZero() bool { return p.seq == "" }

// SequenceNumber returns the sequence number exactly as parsed ("" for the zero Position).
func (p Position) SequenceNumber() string { return p.seq }

// SubSequence returns the index of the user record inside a KPL aggregate, and ok = false when p
// stands for a whole record ([WholeRecord]): the lease table then has no SubSequence attribute.
func (p Position) SubSequence() (sub uint64, ok bool) { return p.sub, p.sub != WholeRecord }

// String returns the sequence number for a whole record, "seq/sub" for a user record inside an
// aggregate, and "none" for the zero Position.
func (p Position) String() string {
	switch {
	case p.IsZero():
		return "none"
	case p.sub == WholeRecord:
		return p.seq
	default:
		return p.seq + "/" + strconv.FormatUint(p.sub, 10)
	}
}
