package kinesisfake

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

type putEntry struct {
	dataOff, dataLen int
	pk               []byte
	ehk              []byte
	hasData, hasPK   bool
	hasEHK           bool
	hash             u128
	shard            *shard
	code             string // "" when accepted
	counter          uint64
}

type putRequest struct {
	name, arn   []byte
	entries     []putEntry
	data        []byte // decoded blobs of all entries
	sawRecords  bool
	recordsNull bool
	badBase64   bool
}

func (f *Fake) getPut() *putRequest {
	if r, ok := f.puts.Get().(*putRequest); ok {
		return r
	}
	return &putRequest{entries: make([]putEntry, 0, 16)}
}

func (f *Fake) releasePut(r *putRequest) {
	if cap(r.data) > 32<<20 {
		r.data = nil
	}
	r.name, r.arn = nil, nil
	for i := range r.entries {
		r.entries[i] = putEntry{}
	}
	r.entries = r.entries[:0]
	r.data = r.data[:0]
	r.sawRecords, r.recordsNull, r.badBase64 = false, false, false
	f.puts.Put(r)
}

func (r *putRequest) entryData(e *putEntry) []byte { return r.data[e.dataOff : e.dataOff+e.dataLen] }

// parse reads a PutRecords body, or a PutRecord body when single.
func (r *putRequest) parse(body []byte, single bool) *apiError {
	sc := scanner{b: body}
	if single {
		r.entries = append(r.entries, putEntry{})
	}
	sc.object(func(key []byte) {
		switch string(key) {
		case "StreamName":
			if !sc.null() {
				r.name = sc.text()
			}
		case "StreamARN":
			if !sc.null() {
				r.arn = sc.text()
			}
		case "Records":
			if single {
				sc.skip()
				return
			}
			r.sawRecords = true
			if sc.null() {
				r.recordsNull = true
				return
			}
			sc.array(func() {
				r.entries = append(r.entries, putEntry{})
				if sc.null() {
					return
				}
				e := len(r.entries) - 1
				sc.object(func(k []byte) { r.field(&sc, e, k) })
			})
		default:
			if single {
				r.field(&sc, 0, key)
				return
			}
			sc.skip()
		}
	})
	sc.end()
	if sc.err != nil {
		return badRequest(ErrSerialization, "Could not parse request body: %v", sc.err)
	}
	if r.badBase64 {
		return badRequest(ErrSerialization, "Base64 encoded blob is invalid.")
	}
	return nil
}

func (r *putRequest) field(sc *scanner, i int, key []byte) {
	e := &r.entries[i]
	switch string(key) {
	case "Data":
		if sc.null() {
			return
		}
		raw, esc := sc.str()
		if sc.err != nil {
			return
		}
		if esc {
			raw = []byte(strings.ReplaceAll(string(raw), `\/`, `/`))
		}
		n := base64.StdEncoding.DecodedLen(len(raw))
		r.data = slices.Grow(r.data, n)
		off := len(r.data)
		m, err := base64.StdEncoding.Decode(r.data[off:off+n], raw)
		if err != nil {
			r.badBase64 = true
			return
		}
		r.data = r.data[:off+m]
		e.dataOff, e.dataLen, e.hasData = off, m, true
	case "PartitionKey":
		if sc.null() {
			return
		}
		e.pk = sc.text()
		e.hasPK = true
	case "ExplicitHashKey":
		if sc.null() {
			return
		}
		e.ehk = sc.text()
		e.hasEHK = true
	default:
		sc.skip()
	}
}

// validate applies the request constraints of AWS. prefix is "records.%d.member."
// for PutRecords and "" for PutRecord.
func (f *Fake) validatePut(r *putRequest, single bool) (totalBytes int64, ae *apiError) {
	var msgs []string
	add := func(format string, args ...any) { msgs = append(msgs, fmt.Sprintf(format, args...)) }
	if len(r.name) == 0 && len(r.arn) == 0 {
		return 0, badRequest(ErrValidation, "Either StreamName or StreamARN should be provided.")
	}
	if !single {
		switch {
		case !r.sawRecords || r.recordsNull:
			add("Value null at 'records' failed to satisfy constraint: Member must not be null")
		case len(r.entries) == 0:
			add("Value '[]' at 'records' failed to satisfy constraint: Member must have length greater than or equal to 1")
		case len(r.entries) > f.cfg.maxRecords:
			add("Value at 'records' failed to satisfy constraint: Member must have length less than or equal to %d", f.cfg.maxRecords)
		}
	}
	for i := range r.entries {
		e := &r.entries[i]
		// at is the member path of the entry; built only for messages.
		at := func() string {
			if single {
				return ""
			}
			return "records." + strconv.Itoa(i+1) + ".member."
		}
		size := int64(e.dataLen + len(e.pk))
		totalBytes += size
		if !e.hasData {
			add("Value null at '%sdata' failed to satisfy constraint: Member must not be null", at())
		}
		if !e.hasPK {
			add("Value null at '%spartitionKey' failed to satisfy constraint: Member must not be null", at())
		} else if n := utf8.RuneCount(e.pk); n < 1 {
			add("Value '' at '%spartitionKey' failed to satisfy constraint: Member must have length greater than or equal to 1", at())
		} else if n > 256 {
			add("Value '%s' at '%spartitionKey' failed to satisfy constraint: Member must have length less than or equal to 256", e.pk, at())
		}
		if e.hasData && size > f.cfg.maxRecSize {
			add("Value at '%sdata' failed to satisfy constraint: Member must have length less than or equal to %d", at(), f.cfg.maxRecSize)
		}
		if e.hasEHK {
			if _, ok, _ := parseHashKey(e.ehk); !ok || len(e.ehk) > 39 {
				add("Value '%s' at '%sexplicitHashKey' failed to satisfy constraint: Member must satisfy regular expression pattern: 0|([1-9]\\d{0,38})", e.ehk, at())
			}
		}
	}
	if len(msgs) > 0 {
		word := "error"
		if len(msgs) > 1 {
			word = "errors"
		}
		return totalBytes, badRequest(ErrValidation, "%d validation %s detected: %s", len(msgs), word, strings.Join(msgs, "; "))
	}
	if !single && totalBytes > f.cfg.maxReqBytes {
		limit := strconv.FormatInt(f.cfg.maxReqBytes, 10) + " bytes"
		if f.cfg.maxReqBytes%(1<<20) == 0 {
			limit = strconv.FormatInt(f.cfg.maxReqBytes>>20, 10) + " MB"
		}
		return totalBytes, badRequest(ErrInvalidArgument, "Records size exceeds %s limit", limit)
	}
	for i := range r.entries {
		e := &r.entries[i]
		if e.hasEHK {
			v, _, overflow := parseHashKey(e.ehk)
			if overflow {
				return totalBytes, badRequest(ErrInvalidArgument, "Invalid ExplicitHashKey. ExplicitHashKey must be in the range: [0, 2^128-1]. Specified value was %s", e.ehk)
			}
			e.hash = v
		} else {
			e.hash = hashPartitionKey(e.pk)
		}
	}
	return totalBytes, nil
}

// apply routes, throttles and stores the entries of r in s.
func (f *Fake) apply(s *stream, r *putRequest) (failed int) {
	nowT := f.now()
	now := nowT.UnixNano()
	var rf RecordFaultFunc
	if p := f.recordFault.Load(); p != nil {
		rf = *p
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range r.entries {
		e := &r.entries[i]
		sh := s.route(e.hash)
		if sh == nil {
			e.code = ErrInternalFailure
			failed++
			continue
		}
		e.shard = sh
		data := r.entryData(e)
		size := int64(len(data) + len(e.pk))
		sh.st.offeredRecSec.add(now, 1)
		sh.st.offeredByteSec.add(now, size)
		if rf != nil {
			if code := rf(RecordInfo{Stream: s.name, ShardID: sh.id, PartitionKey: string(e.pk), Data: data}); code != "" {
				e.code = code
				sh.st.failedRecords++
				failed++
				continue
			}
		}
		sh.wRecords.refresh(now)
		sh.wBytes.refresh(now)
		if !sh.wRecords.can(1) || !sh.wBytes.can(size) {
			e.code = ErrProvisionedThroughput
			sh.st.throttledRecords++
			sh.st.throttledBytes += size
			failed++
			continue
		}
		sh.wRecords.take(1)
		sh.wBytes.take(size)
		e.counter = sh.store(e.pk, data, now, f.cfg.discard)
		sh.st.acceptedRecords++
		sh.st.acceptedBytes += size
		sh.st.acceptedRecSec.add(now, 1)
		sh.st.acceptedByteSec.add(now, size)
	}
	return failed
}

func (f *Fake) putRecords(body, out []byte) ([]byte, *apiError) {
	r := f.getPut()
	defer f.releasePut(r)
	if ae := r.parse(body, false); ae != nil {
		return nil, ae
	}
	total, ae := f.validatePut(r, false)
	atomicMax(&f.maxReqRecs, int64(len(r.entries)))
	atomicMax(&f.maxReqBytes, total)
	if ae != nil {
		return nil, ae
	}
	s, ae := f.lookup(string(r.name), string(r.arn))
	if ae != nil {
		return nil, ae
	}
	failed := f.apply(s, r)

	out = slices.Grow(out, 48+len(r.entries)*112)
	out = append(out, `{"FailedRecordCount":`...)
	out = strconv.AppendInt(out, int64(failed), 10)
	out = append(out, `,"Records":[`...)
	for i := range r.entries {
		e := &r.entries[i]
		if i > 0 {
			out = append(out, ',')
		}
		if e.code == "" {
			out = append(out, `{"SequenceNumber":"`...)
			out = s.appendSeq(out, e.shard.idx, e.counter)
			out = append(out, `","ShardId":"`...)
			out = append(out, e.shard.id...)
			out = append(out, `"}`...)
			continue
		}
		sid := ""
		if e.shard != nil {
			sid = e.shard.id
		}
		out = append(out, `{"ErrorCode":`...)
		out = appendString(out, e.code)
		out = append(out, `,"ErrorMessage":`...)
		out = appendString(out, recordErrorMessage(e.code, sid, s.name, f.cfg.account))
		out = append(out, '}')
	}
	out = append(out, "]}"...)
	return out, nil
}

func (f *Fake) putRecord(body, out []byte) ([]byte, *apiError) {
	r := f.getPut()
	defer f.releasePut(r)
	if ae := r.parse(body, true); ae != nil {
		return nil, ae
	}
	total, ae := f.validatePut(r, true)
	atomicMax(&f.maxReqRecs, 1)
	atomicMax(&f.maxReqBytes, total)
	if ae != nil {
		return nil, ae
	}
	s, ae := f.lookup(string(r.name), string(r.arn))
	if ae != nil {
		return nil, ae
	}
	f.apply(s, r)
	e := &r.entries[0]
	if e.code != "" {
		status := http.StatusBadRequest
		if e.code == ErrInternalFailure || e.code == ErrServiceUnavailable {
			status = http.StatusInternalServerError
		}
		sid := ""
		if e.shard != nil {
			sid = e.shard.id
		}
		return nil, errf(status, e.code, "%s", recordErrorMessage(e.code, sid, s.name, f.cfg.account))
	}
	out = append(out, `{"SequenceNumber":"`...)
	out = s.appendSeq(out, e.shard.idx, e.counter)
	out = append(out, `","ShardId":"`...)
	out = append(out, e.shard.id...)
	out = append(out, `"}`...)
	return out, nil
}
