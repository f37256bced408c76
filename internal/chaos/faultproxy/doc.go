// Package faultproxy is a fault-injecting HTTP reverse proxy for tests: it sits between an
// aws-sdk-go-v2 Kinesis or DynamoDB client and a local emulator (kinesalite, kinesis-local,
// dynalite) and does what no emulator does: throttling, 5xx and other AWS error answers,
// connection resets, rejected credentials, added latency, network partitions, and GetRecords
// answers that report a backlog.
//
// The multi-process fault suite gives every reader and writer process its own proxies (one for
// Kinesis, one for DynamoDB), so a test can attack the traffic of one process while the others
// keep a healthy network:
//
//	p, err := faultproxy.New(faultproxy.Kinesis, "http://127.0.0.1:4567")
//	...
//	defer p.Close()
//	// point the process's client at p.URL() (BaseEndpoint), then:
//	p.SetFaults(faultproxy.Faults{ThrottleRate: 0.3, Operations: []string{"GetRecords"}, Seed: 7})
//	p.Partition(true) // black hole; p.Partition(false) lifts it
//
// # Faults
//
// SetFaults installs a Faults value; it applies per request to the operations it names (all of
// them when Operations is empty), read from the X-Amz-Target header
// ("Kinesis_20131202.GetRecords", "DynamoDB_20120810.UpdateItem"). A matching request first waits
// Latency, then is rejected when RejectCredentials is set, else one draw from a math/rand/v2 PCG
// source seeded with Faults.Seed picks its fate: reset (ResetRate), throttled (ThrottleRate),
// 5xx (ServerErrorRate), a chosen AWS error (ErrorRate) or forwarded (the rest). SetFaults
// reseeds the source, so with sequential requests a run is reproducible.
//
// Faked errors are what aws-sdk-go-v2 parses for the AWS JSON 1.1 (Kinesis) and 1.0 (DynamoDB)
// protocols: Content-Type application/x-amz-json-1.1 or 1.0, X-Amzn-ErrorType and
// X-Amzn-RequestId headers, body {"__type":"<Code>","message":"..."}. The client sees
//
//   - throttling: 400 ProvisionedThroughputExceededException for Kinesis (a modeled
//     *types.ProvisionedThroughputExceededException); for DynamoDB, alternately
//     ProvisionedThroughputExceededException and ThrottlingException (both modeled);
//   - server errors: alternately 500 InternalFailure and 503 ServiceUnavailable;
//   - a chosen error (ErrorRate): the code ErrorCode with the status ErrorStatus, by default 500
//     for InternalFailure, 503 for ServiceUnavailable and 400 for the others, which is what AWS
//     answers for KMSThrottlingException, KMSAccessDeniedException, KMSDisabledException,
//     ExpiredIteratorException or ResourceNotFoundException; the SDK gives the modeled type
//     (*types.KMSDisabledException...) of the operation's known errors;
//   - rejected credentials: 400 UnrecognizedClientException "The security token included in the
//     request is invalid." (the emulators accept any credentials);
//   - resets: the TCP connection is closed with an RST (SO_LINGER 0) before any answer, once
//     the request is read whole, so the client sees "connection reset by peer" while it waits
//     for the answer.
//
// Kinesis throttling is always ProvisionedThroughputExceededException, the code of the data-plane
// operations; restrict Operations to those (GetRecords, PutRecord(s), GetShardIterator) when the
// control plane, which AWS throttles with LimitExceededException, must stay healthy.
//
// An outage longer than the client's retries is a burst: the test calls SetFaults with a rate
// of 1 for the operation, waits, and calls SetFaults again without it.
//
// # Backlog
//
// Kinesis tells a reader how far behind the tip of the shard it is (MillisBehindLatest in
// every GetRecords answer); kinesalite and kinesis-local always answer 0. A reader that batches
// flushes its partial batch when it is caught up, so against the emulators it flushes after
// every answer, and a failure that strikes while a batch is partial (a read error, a restart)
// never meets one: the bugs of that path hide. Faults.Backlog rewrites every forwarded
// GetRecords answer that carries records to report MillisBehindLatest = Backlog, as Kinesis
// does to a reader that is behind (answers without records, at the tip, keep their 0), and
// fixes its Content-Length. While it is on, GetRecords requests are forwarded with
// Accept-Encoding: identity so the answer can be rewritten. Stats.Backlogged counts the
// rewritten answers.
//
// # Partitions
//
// Partition(true) turns the proxy into a black hole for all requests, whatever the Faults:
// requests (also on new connections, which are still accepted) are held unanswered, as are the
// answers of requests already forwarded, so a client only gets out by its own timeout.
// Partition(false) or Close resets every held connection: a held request (read whole, like a
// reset one) is never forwarded late. A request forwarded before the partition may have taken
// effect at the target although its answer was dropped, as on a real network.
//
// # Forwarding
//
// Requests are forwarded unchanged (but for Backlog's Accept-Encoding) by
// net/http/httputil.ReverseProxy over the proxy's own transport, bodies streamed, with the Host
// header set to the target's host; a target that cannot be reached is answered 502 BadGateway,
// not counted as a fault. The request's SigV4 signature covers the proxy's host, which the
// emulators do not check; the proxy is not meant for real AWS endpoints. Clients talk HTTP/1.1
// to the proxy, so event streams over HTTP/2 (SubscribeToShard) cannot go through it. It
// listens on 127.0.0.1 only and keeps no global state; Close stops it and waits for the
// goroutines it started. Requests counts the requests received per operation, whatever their
// fate.
package faultproxy
