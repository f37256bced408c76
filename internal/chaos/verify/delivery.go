package verify

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"
	"unicode/utf8"
)

// Delivery is one record as a reader delivered it: one line of a reader's
// output file.
type Delivery struct {
	Key         string // "k": the record's partition key, "key-<k>"
	N           int    // "n": the record's per-key counter
	Shard       string // "shard": the shard it was read from
	Seq         string // "seq": its sequence number, in decimal
	At          int64  // "t": when it was delivered, unix nanoseconds (wall clock)
	Incarnation string // "w": the reader incarnation that delivered it, e.g. "r2.1"

	// Where the line came from, for messages; not part of the JSON.
	Source string // the name given to ParseDeliveries (a file path)
	Line   int    // 1-based line number in Source
}

// Time returns At as a time.Time.
func (d Delivery) Time() time.Time { return time.Unix(0, d.At) }

// String identifies the delivery for messages: what, by whom, when, where.
func (d Delivery) String() string {
	return fmt.Sprintf("%s/%d by %s at %s%s, %s seq %s",
		d.Key, d.N, d.Incarnation, d.clock(), d.where(), d.Shard, d.Seq)
}

// clock is the delivery's time of day, to the microsecond: runs are short.
func (d Delivery) clock() string { return d.Time().UTC().Format("15:04:05.000000") }

// where is " (source:line)", or "" when the delivery has no source.
func (d Delivery) where() string {
	if d.Source == "" {
		return ""
	}
	return fmt.Sprintf(" (%s:%d)", d.Source, d.Line)
}

// AppendJSON appends the delivery as the JSON object ParseDeliveries reads,
// without a newline:
//
//	{"k":"key-3","n":17,"shard":"shardId-000000000001","seq":"4959...","t":1732570000123456789,"w":"r2.1"}
//
// Source and Line are not written. Invalid UTF-8 in a string is written as
// U+FFFD, as encoding/json does.
func (d Delivery) AppendJSON(dst []byte) []byte {
	dst = append(dst, `{"k":`...)
	dst = appendString(dst, d.Key)
	dst = append(dst, `,"n":`...)
	dst = strconv.AppendInt(dst, int64(d.N), 10)
	dst = append(dst, `,"shard":`...)
	dst = appendString(dst, d.Shard)
	dst = append(dst, `,"seq":`...)
	dst = appendString(dst, d.Seq)
	dst = append(dst, `,"t":`...)
	dst = strconv.AppendInt(dst, d.At, 10)
	dst = append(dst, `,"w":`...)
	dst = appendString(dst, d.Incarnation)
	return append(dst, '}')
}

// appendString appends s as a JSON string.
func appendString(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				dst = append(dst, '\\', c)
			case c < 0x20:
				dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			default:
				dst = append(dst, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, `\ufffd`...)
		} else {
			dst = append(dst, s[i:i+size]...)
		}
		i += size
	}
	return append(dst, '"')
}

// Distinct counts the distinct records (key, n) among deliveries, written or
// not: for a harness polling the readers' files until everything was read,
// before it runs Check.
func Distinct(deliveries []Delivery) int {
	type record struct {
		key string
		n   int
	}
	seen := make(map[record]struct{}, len(deliveries))
	for _, d := range deliveries {
		seen[record{d.Key, d.N}] = struct{}{}
	}
	return len(seen)
}

// FileStats describes one parsed source of deliveries.
type FileStats struct {
	Source     string
	Deliveries int // complete lines, each one delivery
	// TornLine is the 1-based number of an unterminated final line that was
	// ignored (the process was killed while writing it), or 0 if none.
	TornLine  int
	TornBytes int // length of that line
}

// LineError reports a malformed line in a source of deliveries.
type LineError struct {
	Source string
	Line   int // 1-based
	Err    error
}

func (e *LineError) Error() string {
	return fmt.Sprintf("%s:%d: %v", e.Source, e.Line, e.Err)
}

func (e *LineError) Unwrap() error { return e.Err }

// maxLineBytes bounds a line, so that a file of garbage without newlines
// fails instead of being read into memory whole. A delivery line is ~150
// bytes.
const maxLineBytes = 1 << 20

// ParseDeliveries reads deliveries, one JSON object per line, from r. source
// names r in the deliveries and in errors (a file path).
//
// A final line without a newline is ignored and reported in the FileStats:
// it is what a process killed mid-write leaves. Every other line must be a
// delivery; the first one that is not fails the parse with a *LineError, and
// no deliveries are returned.
func ParseDeliveries(r io.Reader, source string) ([]Delivery, FileStats, error) {
	ds, st, err := parseInto(make([]Delivery, 0, capacityFor(sizeOf(r))), r, source, newInterner())
	if err != nil {
		return nil, FileStats{}, err
	}
	return ds, st, nil
}

// ReadDeliveryFiles parses the files at paths, in order, and returns all
// their deliveries in that order (the order Check uses to break ties between
// deliveries stamped with the same time) and one FileStats per file.
func ReadDeliveryFiles(paths ...string) ([]Delivery, []FileStats, error) {
	var size int64
	for _, p := range paths {
		if fi, err := os.Stat(p); err == nil {
			size += fi.Size()
		}
	}
	ds := make([]Delivery, 0, capacityFor(size))
	stats := make([]FileStats, 0, len(paths))
	in := newInterner() // shared: every file names the same shards and keys
	for _, p := range paths {
		var st FileStats
		var err error
		ds, st, err = readFile(ds, p, in)
		if err != nil {
			return nil, nil, err
		}
		stats = append(stats, st)
	}
	return ds, stats, nil
}

// capacityFor estimates how many deliveries size bytes of lines hold. Growing
// a slice of a million deliveries by doubling would allocate, clear and copy
// it several times over: that was most of the cost of a parse. A line is
// 110 to 160 bytes, so the estimate is at worst one doubling short.
func capacityFor(size int64) int {
	const typicalLine = 140
	return int(min(size/typicalLine+1, 1<<24))
}

// sizeOf returns the number of bytes r holds, if it can tell cheaply.
func sizeOf(r io.Reader) int64 {
	switch r := r.(type) {
	case interface{ Len() int }: // bytes.Reader, strings.Reader, bytes.Buffer
		return int64(r.Len())
	case interface{ Stat() (os.FileInfo, error) }: // *os.File
		if fi, err := r.Stat(); err == nil && fi.Mode().IsRegular() {
			return fi.Size()
		}
	}
	return 0
}

func readFile(dst []Delivery, path string, in interner) ([]Delivery, FileStats, error) {
	f, err := os.Open(path)
	if err != nil {
		return dst, FileStats{}, fmt.Errorf("reading deliveries: %w", err)
	}
	defer f.Close()
	return parseInto(dst, f, path, in)
}

// parseInto appends the deliveries read from r to dst.
func parseInto(dst []Delivery, r io.Reader, source string, in interner) ([]Delivery, FileStats, error) {
	st := FileStats{Source: source}
	br := bufio.NewReaderSize(r, 256<<10)
	var long []byte // a line longer than br's buffer, assembled
	inLong := false
	line := 0
	for {
		chunk, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			long = append(long, chunk...)
			inLong = true
			if len(long) > maxLineBytes {
				return dst, st, &LineError{source, line + 1, fmt.Errorf("line longer than %d bytes", maxLineBytes)}
			}
			continue
		}
		text := chunk
		if inLong {
			long = append(long, chunk...)
			text, inLong = long, false
			if len(text) > maxLineBytes {
				return dst, st, &LineError{source, line + 1, fmt.Errorf("line longer than %d bytes", maxLineBytes)}
			}
		}
		if err == io.EOF {
			if len(text) > 0 {
				st.TornLine, st.TornBytes = line+1, len(text)
			}
			return dst, st, nil
		}
		if err != nil {
			return dst, st, fmt.Errorf("reading deliveries from %s after line %d: %w", source, line, err)
		}
		line++
		d := Delivery{Source: source, Line: line}
		if err := parseLine(text[:len(text)-1], in, &d); err != nil {
			return dst, st, &LineError{source, line, err}
		}
		dst = append(dst, d)
		st.Deliveries++
		long = long[:0]
	}
}
