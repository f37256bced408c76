// Package kinesisfake is an in-process fake of the Amazon Kinesis Data Streams
// HTTP API, for tests and benchmarks of the Kinesis plugins.
//
// It speaks the AWS JSON 1.1 protocol that aws-sdk-go-v2's kinesis client uses
// (POST /, X-Amz-Target: Kinesis_20131202.<Op>, Content-Type
// application/x-amz-json-1.1, base64 blobs, errors as
// {"__type":"...","message":"..."}), so a real client pointed at it with
// BaseEndpoint works unchanged.
//
// # Why it exists
//
// No local Kinesis emulator (kinesalite, kinesis-local, LocalStack) throttles
// writes or enforces the request-size limits of the real service. This fake
// does: it is the honest tool for tests of an output's limit handling and for
// benchmarks of the plugins' own CPU cost. It enforces
//
//   - per PutRecords request: at most 500 records (ValidationException) and at
//     most 5 MiB of data plus partition keys (InvalidArgumentException
//     "Records size exceeds 5 MB limit"), both configurable;
//   - per record: data plus partition key at most MaxRecordSize (default
//     1 MiB), partition key 1..256 Unicode characters, ExplicitHashKey a
//     decimal in [0, 2^128-1] (ValidationException / InvalidArgumentException
//     for the whole request, as AWS does);
//   - per shard writes: 1,000 records/s and 1 MiB/s (data plus partition key
//     bytes). A record over the limit fails on its own with ErrorCode
//     ProvisionedThroughputExceededException while the rest of the request
//     succeeds, exactly like a partially failed PutRecords on AWS;
//   - per shard reads: 5 GetRecords calls/s
//     (ProvisionedThroughputExceededException for the call; on by default,
//     WithoutReadLimit turns it off for benchmarks of a reader's own cost);
//     at most 10,000 records and 10 MiB per GetRecords call;
//   - optionally the control-plane rate limits (LimitExceededException).
//
// Limits are counted in per-shard one-second windows aligned to the clock's
// whole seconds (the default) or in token buckets holding one second of burst
// (WithTokenBucket). Time comes from a Clock that tests can replace with a
// ManualClock, so limit tests are deterministic and need no sleeps.
//
// Records are routed like AWS does: MD5 of the partition key read as a
// big-endian 128-bit integer (or the ExplicitHashKey) selects the open shard
// whose hash-key range contains it. Shards of a new stream split
// [0, 2^128-1] evenly. Sequence numbers are 56-digit decimal strings that
// increase within a shard.
//
// It is built to be cheap: one mutex per stream, no goroutine per record or
// shard, hand-written JSON for the hot operations (PutRecords, PutRecord,
// GetRecords), pooled buffers, and records stored per shard in one compact
// slice whose payloads live in shared arena chunks.
//
// Fault injection: FailNext makes the next N requests of an operation fail
// with a chosen HTTP status and error type; SetRecordFault installs a
// per-record predicate (see FailPartitionKey). Stats reports per-shard
// accepted/throttled counts, per-operation request counts, the largest
// request seen and the most records/bytes accepted or offered in any one
// second, so a test can assert that a producer never went above the limits.
//
// Clients: Start serves the fake on an httptest server; Server.Client
// returns a configured aws-sdk-go-v2 client. Code that builds its own client
// against the fake should use Server.HTTPClient when it disables retries;
// see awssession.ReadOnlyBodies for the SDK race it avoids.
//
// Not modelled: resharding (the shard model keeps ParentShardId and closed
// shards so it can be added), enhanced fan-out (SubscribeToShard), retention
// trimming, encryption, tagging, consumers, and the 2 MiB/s per-shard read
// byte limit.
package kinesisfake
