package output

import (
	"context"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/benthos-kinesis/benthos-kinesis/internal/kinesisapi"
)

// The shard map: loaded at Connect, refreshed on a period and after a
// misprediction, with the state kept per shard across refreshes.

// shardState is what the output keeps per shard across shard-map refreshes.
type shardState struct {
	id      string
	limiter *shardLimiter
}

// loadShardMap lists the stream's shards, every page, and maps the open ones.
func (w *kinesisWriter) loadShardMap(ctx context.Context) (*shardMap, error) {
	shards, err := kinesisapi.ListShards(ctx, w.client, kinesisapi.Stream(w.conf.stream), 0)
	if err != nil {
		return nil, err
	}
	var open []shardBounds
	for _, s := range shards {
		if s.SequenceNumberRange != nil && s.SequenceNumberRange.EndingSequenceNumber != nil {
			continue // closed by a split or merge: no longer takes writes
		}
		if s.HashKeyRange == nil {
			continue
		}
		open = append(open, shardBounds{
			id:              aws.ToString(s.ShardId),
			startingHashKey: aws.ToString(s.HashKeyRange.StartingHashKey),
			endingHashKey:   aws.ToString(s.HashKeyRange.EndingHashKey),
		})
	}
	if len(open) == 0 {
		return nil, fmt.Errorf("stream %s has no open shards", w.conf.stream)
	}
	now := w.now()
	w.statesMu.Lock()
	defer w.statesMu.Unlock()
	return newShardMap(open, func(id string) *shardState {
		if s, ok := w.states[id]; ok {
			return s
		}
		s := &shardState{id: id, limiter: newShardLimiter(w.conf.limits, now)}
		w.states[id] = s
		return s
	})
}

// refresh reloads the shard map.
func (w *kinesisWriter) refresh(ctx context.Context) error {
	m, err := w.loadShardMap(ctx)
	if err != nil {
		return err
	}
	w.shardMap.Store(m)
	w.metrics.refreshes.Incr(1, w.conf.stream)
	if run := w.run.Load(); run != nil {
		run.d.signal() // its queues follow the new map
	}
	return nil
}

// minRefreshGap bounds how often a misprediction can trigger a refresh: while
// a stream is being resharded, every record could report one.
const minRefreshGap = time.Second

// refreshLoop refreshes the shard map every shard_refresh_period and soon
// after a write lands on a shard other than predicted.
func (w *kinesisWriter) refreshLoop(ctx context.Context) {
	ticker := time.NewTicker(w.conf.shardRefreshPeriod)
	defer ticker.Stop()
	var last time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		case <-w.refreshNow:
			if gap := minRefreshGap - time.Since(last); gap > 0 {
				if sleepCtx(ctx, gap) != nil {
					return
				}
			}
		}
		if err := w.refresh(ctx); err != nil && ctx.Err() == nil {
			w.log.Warnf("Refreshing the shard map of %s: %v", w.conf.stream, err)
		}
		last = time.Now()
	}
}

func (w *kinesisWriter) requestRefresh() {
	select {
	case w.refreshNow <- struct{}{}:
	default:
	}
}
