package output

import (
	"testing"
)

// Even ranges of a 4-shard stream, as CreateStream makes them.
var fourShards = []shardBounds{
	{"shardId-000000000000", "0", "85070591730234615865843651857942052863"},
	{"shardId-000000000001", "85070591730234615865843651857942052864", "170141183460469231731687303715884105727"},
	{"shardId-000000000002", "170141183460469231731687303715884105728", "255211775190703847597530955573826158591"},
	{"shardId-000000000003", "255211775190703847597530955573826158592", "340282366920938463463374607431768211455"},
}

func testStates() func(string) *shardState {
	return func(id string) *shardState { return &shardState{id: id} }
}

func TestPartitionHashHandComputed(t *testing.T) {
	// MD5 digests computed outside Go (python hashlib), as decimal integers.
	cases := []struct {
		key, decimal, shard string
	}{
		{"a", "16955237001963240173058271559858726497", "shardId-000000000000"},
		{"b", "195289424170611159128911017612795795343", "shardId-000000000002"},
		{"c", "99079589977253916124855502156832923443", "shardId-000000000001"},
		{"d", "173422077530204247440288476180261147053", "shardId-000000000002"},
		{"e", "299611584147932843547128611849858313266", "shardId-000000000003"},
		{"partition-key-1", "33365116028791453877729010807000998774", "shardId-000000000000"},
		{"日本", "103341369634063465466164320543046703539", "shardId-000000000001"},
	}
	m, err := newShardMap(fourShards, testStates())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cases {
		want, err := parseHashKey(c.decimal)
		if err != nil {
			t.Fatal(err)
		}
		if got := partitionHash(c.key); got != want {
			t.Errorf("partitionHash(%q) = %v, want %v", c.key, got, want)
		}
		if got := m.lookup(want); got == nil || got.id != c.shard {
			t.Errorf("lookup(%q) = %v, want %s", c.key, got, c.shard)
		}
	}
}

func TestShardMapRangeEdges(t *testing.T) {
	m, err := newShardMap(fourShards, testStates())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		hash, shard string
	}{
		{"0", "shardId-000000000000"},
		{"85070591730234615865843651857942052863", "shardId-000000000000"},
		{"85070591730234615865843651857942052864", "shardId-000000000001"},
		{"170141183460469231731687303715884105727", "shardId-000000000001"},
		{"170141183460469231731687303715884105728", "shardId-000000000002"},
		{"255211775190703847597530955573826158592", "shardId-000000000003"},
		{"340282366920938463463374607431768211455", "shardId-000000000003"},
	} {
		h, err := parseHashKey(c.hash)
		if err != nil {
			t.Fatal(err)
		}
		if got := m.lookup(h); got == nil || got.id != c.shard {
			t.Errorf("lookup(%s) = %v, want %s", c.hash, got, c.shard)
		}
	}
}

func TestShardMapGapAndOrder(t *testing.T) {
	// Shards listed out of order, with a gap between 10 and 20 (mid-reshard).
	m, err := newShardMap([]shardBounds{
		{"hi", "21", "340282366920938463463374607431768211455"},
		{"lo", "0", "10"},
	}, testStates())
	if err != nil {
		t.Fatal(err)
	}
	for h, want := range map[uint64]string{0: "lo", 10: "lo", 11: "", 20: "", 21: "hi", 1 << 63: "hi"} {
		got := m.lookup(hashKey{Lo: h})
		switch {
		case want == "" && got != nil:
			t.Errorf("lookup(%d) = %s, want none", h, got.id)
		case want != "" && (got == nil || got.id != want):
			t.Errorf("lookup(%d) = %v, want %s", h, got, want)
		}
	}
	if _, err := newShardMap([]shardBounds{{"x", "5", "4"}}, testStates()); err == nil {
		t.Error("a range ending below its start was accepted")
	}
	if _, err := newShardMap([]shardBounds{{"x", "0", "nope"}}, testStates()); err == nil {
		t.Error("a non-numeric bound was accepted")
	}
}

func TestCheckPartitionKey(t *testing.T) {
	long := make([]rune, 256)
	for i := range long {
		long[i] = 'é' // 2 bytes each: Kinesis counts characters, not bytes
	}
	for _, c := range []struct {
		key string
		ok  bool
	}{
		{"", false},
		{"k", true},
		{string(long), true},
		{string(long) + "x", false},
	} {
		if err := checkPartitionKey(c.key); (err == nil) != c.ok {
			t.Errorf("checkPartitionKey(%d runes) = %v, want ok=%v", len([]rune(c.key)), err, c.ok)
		}
	}
}
