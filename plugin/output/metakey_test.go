package output

import (
	"testing"

	"github.com/redpanda-data/benthos/v4/public/service"
)

func TestMetaKeyOf(t *testing.T) {
	for raw, want := range map[string]string{
		`${! meta("key") }`:              "key",
		`${!meta("kafka_key")}`:          "kafka_key",
		`${!   meta("a.b-c") }`:          "a.b-c",
		`${! meta("key") }-suffix`:       "",
		`${! meta("key").or("x") }`:      "",
		`${! @key }`:                     "",
		`${! meta("k\"ey") }`:            "",
		`static`:                         "",
		`${! meta("a") }${! uuid_v4() }`: "",
	} {
		if got := metaKeyOf(raw); got != want {
			t.Errorf("metaKeyOf(%s) = %q, want %q", raw, got, want)
		}
	}
}

// The fast path must give exactly what Benthos' own interpolation gives, for
// every kind of metadata value: Benthos is the oracle.
func TestMetaStringMatchesInterpolation(t *testing.T) {
	expr, err := service.NewInterpolatedString(`${! meta("key") }`)
	if err != nil {
		t.Fatal(err)
	}
	values := []any{"plain", "", "日本", int64(-42), uint64(42), 3.25, 1e21, true, false, []byte("bytes"), nil}
	for _, v := range values {
		msg := service.NewMessage([]byte("x"))
		if v != nil {
			msg.MetaSetMut("key", v)
		}
		want, err := service.MessageBatch{msg}.InterpolationExecutor(expr).TryString(0)
		if err != nil {
			t.Fatal(err)
		}
		if got := metaString(msg, "key"); got != want {
			t.Errorf("metadata %#v: fast path %q, interpolation %q", v, got, want)
		}
	}
	// A structured value too.
	msg := service.NewMessage(nil)
	msg.MetaSetMut("key", map[string]any{"a": 1})
	want, _ := service.MessageBatch{msg}.InterpolationExecutor(expr).TryString(0)
	if got := metaString(msg, "key"); got != want {
		t.Errorf("structured metadata: fast path %q, interpolation %q", got, want)
	}
}
