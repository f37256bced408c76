package kinesisfake

import (
	"encoding/base64"
	"encoding/json"
	"sort"
	"strconv"
	"time"
)

// epoch marshals as epoch seconds with millisecond precision, the JSON 1.1
// timestamp format.
type epoch time.Time

func (e epoch) MarshalJSON() ([]byte, error) {
	ms := time.Time(e).UnixMilli()
	b := strconv.AppendInt(nil, ms/1000, 10)
	b = append(b, '.')
	return appendPadded(b, uint64(ms%1000), 3), nil
}

type hashKeyRange struct {
	StartingHashKey string
	EndingHashKey   string
}

type sequenceNumberRange struct {
	StartingSequenceNumber string
	EndingSequenceNumber   string `json:",omitempty"`
}

type shardOut struct {
	ShardId               string
	ParentShardId         string `json:",omitempty"`
	AdjacentParentShardId string `json:",omitempty"`
	HashKeyRange          hashKeyRange
	SequenceNumberRange   sequenceNumberRange
}

type streamModeDetails struct{ StreamMode string }

type enhancedMetrics struct{ ShardLevelMetrics []string }

func (sh *shard) out() shardOut {
	return shardOut{
		ShardId:               sh.id,
		ParentShardId:         sh.parentID,
		AdjacentParentShardId: sh.adjParentID,
		HashKeyRange:          hashKeyRange{sh.startStr, sh.endStr},
		SequenceNumberRange:   sequenceNumberRange{sh.startSeq, sh.endSeq},
	}
}

const (
	defaultDescribeLimit   = 100
	defaultListShardsLimit = 1000
	defaultListStreamLimit = 100
	maxListLimit           = 10000
)

// control handles the operations that are not on the hot path, with
// encoding/json.
func (f *Fake) control(op string, body []byte) (any, *apiError) {
	decode := func(v any) *apiError {
		if len(body) == 0 {
			return nil
		}
		if err := json.Unmarshal(body, v); err != nil {
			return badRequest(ErrSerialization, "Could not parse request body: %v", err)
		}
		return nil
	}
	limited := func(key string, n int64) *apiError {
		if !f.apiAllow(key, n) {
			return badRequest(ErrLimitExceeded, "Rate exceeded for %s under account %s.", key, f.cfg.account)
		}
		return nil
	}
	switch op {
	case OpCreateStream:
		var in struct {
			StreamName        string
			ShardCount        *int
			StreamModeDetails *streamModeDetails
		}
		if ae := decode(&in); ae != nil {
			return nil, ae
		}
		if ae := limited(op, 5); ae != nil {
			return nil, ae
		}
		mode := "PROVISIONED"
		if in.StreamModeDetails != nil && in.StreamModeDetails.StreamMode != "" {
			mode = in.StreamModeDetails.StreamMode
			if mode != "PROVISIONED" && mode != "ON_DEMAND" {
				return nil, badRequest(ErrValidation, "1 validation error detected: Value '%s' at 'streamModeDetails.streamMode' failed to satisfy constraint: Member must satisfy enum value set: [PROVISIONED, ON_DEMAND]", mode)
			}
		}
		n := 0
		switch {
		case in.ShardCount != nil:
			n = *in.ShardCount
		case in.StreamModeDetails == nil || mode == "ON_DEMAND":
			mode, n = "ON_DEMAND", 4
		default:
			return nil, badRequest(ErrInvalidArgument, "ShardCount must be specified for a PROVISIONED stream.")
		}
		return nil, f.createStream(in.StreamName, n, mode)

	case OpDeleteStream:
		var in struct{ StreamName, StreamARN string }
		if ae := decode(&in); ae != nil {
			return nil, ae
		}
		if ae := limited(op, 5); ae != nil {
			return nil, ae
		}
		s, ae := f.lookup(in.StreamName, in.StreamARN)
		if ae != nil {
			return nil, ae
		}
		f.mu.Lock()
		if f.streams[s.name] == s {
			delete(f.streams, s.name)
		}
		f.mu.Unlock()
		return nil, nil

	case OpDescribeStreamSummary:
		var in struct{ StreamName, StreamARN string }
		if ae := decode(&in); ae != nil {
			return nil, ae
		}
		if ae := limited(op, 20); ae != nil {
			return nil, ae
		}
		s, ae := f.lookup(in.StreamName, in.StreamARN)
		if ae != nil {
			return nil, ae
		}
		s.mu.Lock()
		open := len(s.open)
		s.mu.Unlock()
		type summary struct {
			StreamName              string
			StreamARN               string
			StreamStatus            string
			StreamModeDetails       streamModeDetails
			RetentionPeriodHours    int
			StreamCreationTimestamp epoch
			EnhancedMonitoring      []enhancedMetrics
			EncryptionType          string
			OpenShardCount          int
			ConsumerCount           int
		}
		return struct{ StreamDescriptionSummary summary }{summary{
			StreamName: s.name, StreamARN: s.arn, StreamStatus: "ACTIVE",
			StreamModeDetails: streamModeDetails{s.mode}, RetentionPeriodHours: 24,
			StreamCreationTimestamp: epoch(s.created),
			EnhancedMonitoring:      []enhancedMetrics{{ShardLevelMetrics: []string{}}},
			EncryptionType:          "NONE", OpenShardCount: open,
		}}, nil

	case OpDescribeStream:
		var in struct {
			StreamName, StreamARN string
			Limit                 *int
			ExclusiveStartShardId *string
		}
		if ae := decode(&in); ae != nil {
			return nil, ae
		}
		if ae := limited(op, 10); ae != nil {
			return nil, ae
		}
		limit, ae := listLimit(in.Limit, defaultDescribeLimit, "limit")
		if ae != nil {
			return nil, ae
		}
		s, ae := f.lookup(in.StreamName, in.StreamARN)
		if ae != nil {
			return nil, ae
		}
		after := ""
		if in.ExclusiveStartShardId != nil {
			after = *in.ExclusiveStartShardId
		}
		shards, more := f.pageShards(s, after, limit, false)
		type description struct {
			StreamName              string
			StreamARN               string
			StreamStatus            string
			StreamModeDetails       streamModeDetails
			Shards                  []shardOut
			HasMoreShards           bool
			RetentionPeriodHours    int
			StreamCreationTimestamp epoch
			EnhancedMonitoring      []enhancedMetrics
			EncryptionType          string
		}
		return struct{ StreamDescription description }{description{
			StreamName: s.name, StreamARN: s.arn, StreamStatus: "ACTIVE",
			StreamModeDetails: streamModeDetails{s.mode}, Shards: shards, HasMoreShards: more,
			RetentionPeriodHours: 24, StreamCreationTimestamp: epoch(s.created),
			EnhancedMonitoring: []enhancedMetrics{{ShardLevelMetrics: []string{}}},
			EncryptionType:     "NONE",
		}}, nil

	case OpListShards:
		var in listShardsInput
		if ae := decode(&in); ae != nil {
			return nil, ae
		}
		return f.listShards(&in, limited)

	case OpListStreams:
		var in struct {
			Limit                    *int
			ExclusiveStartStreamName *string
			NextToken                *string
		}
		if ae := decode(&in); ae != nil {
			return nil, ae
		}
		if ae := limited(op, 5); ae != nil {
			return nil, ae
		}
		limit, ae := listLimit(in.Limit, defaultListStreamLimit, "limit")
		if ae != nil {
			return nil, ae
		}
		after := ""
		if in.ExclusiveStartStreamName != nil {
			after = *in.ExclusiveStartStreamName
		}
		if in.NextToken != nil {
			tok, ae := f.decodeToken(*in.NextToken)
			if ae != nil {
				return nil, ae
			}
			after = tok.After
		}
		type summary struct {
			StreamName              string
			StreamARN               string
			StreamStatus            string
			StreamModeDetails       streamModeDetails
			StreamCreationTimestamp epoch
		}
		var out struct {
			StreamNames     []string
			HasMoreStreams  bool
			NextToken       *string `json:",omitempty"`
			StreamSummaries []summary
		}
		out.StreamNames = []string{}
		out.StreamSummaries = []summary{}
		f.mu.RLock()
		names := make([]string, 0, len(f.streams))
		for n := range f.streams {
			if n > after {
				names = append(names, n)
			}
		}
		sort.Strings(names)
		if len(names) > limit {
			names = names[:limit]
			out.HasMoreStreams = true
		}
		for _, n := range names {
			s := f.streams[n]
			out.StreamNames = append(out.StreamNames, n)
			out.StreamSummaries = append(out.StreamSummaries, summary{n, s.arn, "ACTIVE", streamModeDetails{s.mode}, epoch(s.created)})
		}
		f.mu.RUnlock()
		if out.HasMoreStreams {
			t := f.encodeToken(listToken{After: names[len(names)-1]})
			out.NextToken = &t
		}
		return out, nil

	case OpGetShardIterator:
		var in getShardIteratorInput
		if ae := decode(&in); ae != nil {
			return nil, ae
		}
		return f.getShardIterator(&in)
	}
	return nil, badRequest(ErrUnknownOperation, "unknown operation %q", op)
}

func listLimit(v *int, def int, field string) (int, *apiError) {
	if v == nil {
		return def, nil
	}
	if *v < 1 {
		return 0, badRequest(ErrValidation, "1 validation error detected: Value '%d' at '%s' failed to satisfy constraint: Member must have value greater than or equal to 1", *v, field)
	}
	if *v > maxListLimit {
		return 0, badRequest(ErrValidation, "1 validation error detected: Value '%d' at '%s' failed to satisfy constraint: Member must have value less than or equal to %d", *v, field, maxListLimit)
	}
	return *v, nil
}

// pageShards returns up to limit shards with ids after `after`, in id order,
// and whether more remain. openOnly skips closed shards.
func (f *Fake) pageShards(s *stream, after string, limit int, openOnly bool) ([]shardOut, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []shardOut{}
	for _, sh := range s.shards {
		if sh.id <= after || (openOnly && sh.closed) {
			continue
		}
		if len(out) == limit {
			return out, true
		}
		out = append(out, sh.out())
	}
	return out, false
}

type listShardsInput struct {
	StreamName              string
	StreamARN               string
	NextToken               *string
	ExclusiveStartShardId   *string
	MaxResults              *int
	StreamCreationTimestamp *float64
	ShardFilter             *struct {
		Type      string
		ShardId   *string
		Timestamp *float64
	}
}

// listToken is the content of a NextToken.
type listToken struct {
	Stream string `json:"s,omitempty"`
	Gen    uint64 `json:"g,omitempty"`
	After  string `json:"a"`
	Open   bool   `json:"o,omitempty"`
	Issued int64  `json:"i"`
}

func (f *Fake) encodeToken(t listToken) string {
	t.Issued = f.now().UnixNano()
	b, _ := json.Marshal(t)
	return base64.StdEncoding.EncodeToString(b)
}

func (f *Fake) decodeToken(s string) (listToken, *apiError) {
	var t listToken
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil || json.Unmarshal(b, &t) != nil || t.Issued == 0 {
		return t, badRequest(ErrInvalidArgument, "Invalid NextToken.")
	}
	if f.now().UnixNano()-t.Issued > int64(NextTokenTTL) {
		return t, badRequest(ErrExpiredNextToken, "The timestamp of the NextToken has expired.")
	}
	return t, nil
}

func (f *Fake) listShards(in *listShardsInput, limited func(string, int64) *apiError) (any, *apiError) {
	maxResults, ae := listLimit(in.MaxResults, defaultListShardsLimit, "maxResults")
	if ae != nil {
		return nil, ae
	}
	var s *stream
	after := ""
	openOnly := false
	if in.NextToken != nil {
		if in.StreamName != "" || in.StreamARN != "" {
			return nil, badRequest(ErrInvalidArgument, "NextToken and StreamName cannot be provided together.")
		}
		if in.ExclusiveStartShardId != nil {
			return nil, badRequest(ErrInvalidArgument, "NextToken and ExclusiveStartShardId cannot be provided together.")
		}
		if in.ShardFilter != nil {
			return nil, badRequest(ErrInvalidArgument, "NextToken and ShardFilter cannot be provided together.")
		}
		tok, ae := f.decodeToken(*in.NextToken)
		if ae != nil {
			return nil, ae
		}
		if tok.Stream == "" {
			return nil, badRequest(ErrInvalidArgument, "Invalid NextToken.")
		}
		if s, ae = f.lookup(tok.Stream, ""); ae != nil {
			return nil, ae
		}
		if s.gen != tok.Gen {
			return nil, badRequest(ErrResourceNotFound, "Stream %s under account %s not found.", tok.Stream, f.cfg.account)
		}
		after, openOnly = tok.After, tok.Open
	} else {
		if s, ae = f.lookup(in.StreamName, in.StreamARN); ae != nil {
			return nil, ae
		}
		if in.ExclusiveStartShardId != nil {
			after = *in.ExclusiveStartShardId
		}
		if fl := in.ShardFilter; fl != nil {
			switch fl.Type {
			case "AFTER_SHARD_ID":
				if fl.ShardId == nil {
					return nil, badRequest(ErrInvalidArgument, "ShardId must be specified for ShardFilter type AFTER_SHARD_ID.")
				}
				after = max2(after, *fl.ShardId)
			case "AT_LATEST":
				openOnly = true
			case "AT_TRIM_HORIZON", "FROM_TRIM_HORIZON":
			case "AT_TIMESTAMP", "FROM_TIMESTAMP":
				if fl.Timestamp == nil {
					return nil, badRequest(ErrInvalidArgument, "Timestamp must be specified for ShardFilter type %s.", fl.Type)
				}
			default:
				return nil, badRequest(ErrValidation, "1 validation error detected: Value '%s' at 'shardFilter.type' failed to satisfy constraint: Member must satisfy enum value set: [AFTER_SHARD_ID, AT_TRIM_HORIZON, FROM_TRIM_HORIZON, AT_LATEST, AT_TIMESTAMP, FROM_TIMESTAMP]", fl.Type)
			}
		}
	}
	if ae := limited(OpListShards+" for stream "+s.name, 1000); ae != nil {
		return nil, ae
	}
	shards, more := f.pageShards(s, after, maxResults, openOnly)
	var out struct {
		Shards    []shardOut
		NextToken *string `json:",omitempty"`
	}
	out.Shards = shards
	if more {
		t := f.encodeToken(listToken{Stream: s.name, Gen: s.gen, After: shards[len(shards)-1].ShardId, Open: openOnly})
		out.NextToken = &t
	}
	return out, nil
}

func max2(a, b string) string {
	if a > b {
		return a
	}
	return b
}
