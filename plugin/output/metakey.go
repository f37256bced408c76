package output

import (
	"regexp"

	"github.com/redpanda-data/benthos/v4/public/service"
)

// metaKeyExpr matches the commonest partition key, `${! meta("key") }`, whose
// value can be read straight from the message's metadata: Benthos' general
// interpolation costs five allocations per record, this none.
var metaKeyExpr = regexp.MustCompile(`^\$\{!\s*meta\("([A-Za-z0-9_.\-/:]+)"\)\s*\}$`)

// metaKeyOf returns the metadata key of an interpolation that is exactly
// meta("key"), or "" for any other expression.
func metaKeyOf(raw string) string {
	if m := metaKeyExpr.FindStringSubmatch(raw); m != nil {
		return m[1]
	}
	return ""
}

// metaString is what `${! meta("key") }` gives for msg: the value as a
// string, or "null" when the key is missing or empty (meta() returns null
// then, and interpolation prints it).
func metaString(msg *service.Message, key string) string {
	if v, _ := msg.MetaGet(key); v != "" {
		return v
	}
	return "null"
}
