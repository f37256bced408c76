package chaos

import (
	"fmt"
	"strings"
)

// readerYAML is a reader's config: the aws_kinesis input with its defaults
// (lease_period 3.5s and so on) through the reader's proxies, one line per
// delivered record with what the verifier needs, in delivery order.
func (c *cluster) readerYAML(id, out string, r *reader) string {
	var b strings.Builder
	limit := ""
	if c.spec.checkpointLimit > 0 {
		limit = fmt.Sprintf("    checkpoint_limit: %d\n", c.spec.checkpointLimit)
	}
	if c.spec.pollLimit > 0 {
		limit += fmt.Sprintf("    poll: { limit: %d }\n", c.spec.pollLimit)
	}
	if r.batching != "" {
		limit += fmt.Sprintf("    batching: %s\n", r.batching)
	}
	fmt.Fprintf(&b, `http:
  enabled: false
input:
  aws_kinesis:
    streams: [ %q ]
    endpoint: %q
    region: us-east-1
    credentials: { id: chaos, secret: chaos }
    dynamodb:
      table: %q
      create: false
      endpoint: %q
%spipeline:
  # One thread keeps the lines of a shard in delivery order.
  threads: 1
  processors:
    - mapping: |
        root = {"k": @kinesis_partition_key, "n": this.n, "shard": @kinesis_shard, "seq": @kinesis_sequence_number, "t": timestamp_unix_nano(), "w": %q}
`, c.stream, r.kin.URL(), c.table, r.ddb.URL(), limit, id)
	file := fmt.Sprintf("file: { path: %q, codec: lines }", out)
	if c.spec.ackURL != "" {
		// The line is written at once; the message is acknowledged when both
		// outputs have it, so when the test's server answers. Its timeout
		// outlasts any hold of the scenario: a timed-out request is a nack,
		// and its replay a duplicate the scenario did not ask for.
		file = fmt.Sprintf(`broker:
    pattern: fan_out
    outputs:
      - %s
      - http_client: { url: %q, verb: POST, timeout: 5m, max_in_flight: 256 }`, file, c.spec.ackURL)
	}
	if c.spec.nackPercent > 0 {
		// A processing error on a random share of messages; reject_errored
		// nacks them and the input (auto_replay_nacks) delivers them again.
		fmt.Fprintf(&b, `    - mapping: |
        root = if random_int(min: 0, max: 99) < %d { throw("chaos: nacked on purpose") } else { this }
    - switch:
        - check: errored()
          processors:
            - log: { level: WARN, message: "chaos: nacked" }
output:
  reject_errored:
    %s
`, c.spec.nackPercent, strings.ReplaceAll(file, "\n", "\n  "))
	} else {
		fmt.Fprintf(&b, "output:\n  %s\n", file)
	}
	b.WriteString(`logger:
  level: INFO
  format: json
  add_timestamp: true
  timestamp_name: time
shutdown_timeout: 30s
`)
	return b.String()
}

// writerYAML is the writer's config: keys × perKey records {"n": counter}
// with partition key key-<k>, written in counter order per key by the
// project's output (one request in flight, order_per_key) through the
// writer's proxy.
func (c *cluster) writerYAML() string {
	return fmt.Sprintf(`http:
  enabled: false
input:
  generate:
    count: %d
    interval: %s
    mapping: |
      let c = count("chaos_writer") - 1
      meta k = "key-" + ($c %% %d).string()
      root.n = ($c - $c %% %d) / %d
output:
  aws_kinesis:
    stream: %q
    partition_key: ${! meta("k") }
    endpoint: %q
    region: us-east-1
    credentials: { id: chaos, secret: chaos }
    max_in_flight: 1
    order_per_key: true
    batching: { count: 100, period: 50ms }
logger:
  level: WARN
  format: json
  add_timestamp: true
  timestamp_name: time
`, c.spec.keys*c.spec.perKey, c.spec.writerInterval, c.spec.keys, c.spec.keys, c.spec.keys, c.stream, c.wProxy.URL())
}
