// Package chaos is the multi-process fault suite: it runs the real
// benthos-kinesis binary as a writer and several readers against the local
// emulators, each process behind its own fault-injecting proxies
// (faultproxy), attacks them (kill -9, SIGSTOP, resharding, scaling,
// throttling and 5xx, nacks, DynamoDB out of reach, GetRecords failing in
// bursts while the readers are behind, acks held, slow or out of order) and
// checks from the outside (verify) that nothing was lost, that per key the
// first delivery of each record came in write order, that every duplicate
// is explained by a forced take-over, and that checkpoints never moved
// backwards.
//
// The scenarios are tests: `go test ./internal/chaos` runs the short
// version of each (part of make test); `make chaos` runs the full ones with
// -chaos.full. docs/RELIABILITY.md describes them and records the figures.
package chaos
