package output

import (
	"fmt"

	"github.com/redpanda-data/benthos/v4/public/service"
)

// prepare turns a batch into records, failing alone each message that can
// never be written.
func (w *kinesisWriter) prepare(batch service.MessageBatch, recs []outRecord, pending []int) []int {
	var pkExec, hkExec *service.MessageBatchInterpolationExecutor
	staticPK, pkIsStatic := w.conf.partitionKey.Static()
	if !pkIsStatic && w.conf.partitionKeyMeta == "" {
		pkExec = batch.InterpolationExecutor(w.conf.partitionKey)
	}
	if w.conf.hashKey != nil {
		hkExec = batch.InterpolationExecutor(w.conf.hashKey)
	}
	for i, msg := range batch {
		r := &recs[i]
		r.index = i
		if err := w.prepareOne(r, msg, i, pkExec, staticPK, hkExec); err != nil {
			r.err = fmt.Errorf("message %d: %w", i, err)
			r.done = true
			continue
		}
		pending = append(pending, i)
	}
	return pending
}

func (w *kinesisWriter) prepareOne(r *outRecord, msg *service.Message, i int, pkExec *service.MessageBatchInterpolationExecutor, staticPK string, hkExec *service.MessageBatchInterpolationExecutor) error {
	data, err := msg.AsBytes()
	if err != nil {
		return fmt.Errorf("read message: %w", err)
	}
	pk := staticPK
	if w.conf.partitionKeyMeta != "" {
		pk = metaString(msg, w.conf.partitionKeyMeta)
	} else if pkExec != nil {
		if pk, err = pkExec.TryString(i); err != nil {
			return fmt.Errorf("partition_key interpolation: %w", err)
		}
	}
	if err := checkPartitionKey(pk); err != nil {
		return err
	}
	r.data, r.partitionKey = data, pk
	r.size = len(data) + len(pk)
	if r.size > w.conf.maxRecordSize {
		return fmt.Errorf("record of %d bytes (data %d + partition key %d) is over the max record size of %d bytes (max_record_size)",
			r.size, len(data), len(pk), w.conf.maxRecordSize)
	}
	if hkExec != nil {
		hk, err := hkExec.TryString(i)
		if err != nil {
			return fmt.Errorf("hash_key interpolation: %w", err)
		}
		if hk != "" {
			if r.hash, err = parseHashKey(hk); err != nil {
				return fmt.Errorf("hash key %q: %w", hk, err)
			}
			r.explicitHash = canonicalHashKey(hk, r.hash)
			return nil
		}
	}
	r.hash = partitionHash(pk)
	return nil
}
