package redistest

import (
	"context"
	"testing"
)

// MoveSlot moves a slot with its keys, and every node, replicas included,
// then names the target as its owner; the slot can be moved back.
func TestMoveSlot(t *testing.T) {
	cl := StartReplicatedCluster(t, 3)
	ctx := context.Background()
	keys := []string{"{moving}a", "{moving}b", "{moving}c"}
	slot64, err := cl.Nodes[0].Client().ClusterKeySlot(ctx, keys[0]).Result()
	if err != nil {
		t.Fatal(err)
	}
	slot := int(slot64)
	from := min(slot/(16384/len(cl.Nodes)), len(cl.Nodes)-1) // StartCluster's spread
	to := (from + 1) % len(cl.Nodes)
	for _, k := range keys {
		if err := cl.Nodes[from].Client().Set(ctx, k, k, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}

	for _, m := range []struct{ from, to int }{{from, to}, {to, from}} {
		cl.MoveSlot(slot, m.from, m.to)
		for i, n := range append(append([]*Server{}, cl.Nodes...), cl.Replicas...) {
			owner, err := ownerIn(ctx, n.Client(), slot)
			if err != nil || owner.Addr != cl.Nodes[m.to].Addr() {
				t.Errorf("after moving slot %d from master %d to %d (%s), node %d (%s) names %+v (err %v)",
					slot, m.from, m.to, cl.Nodes[m.to].Addr(), i, n.Addr(), owner, err)
			}
		}
		if left, err := cl.Nodes[m.from].Client().ClusterCountKeysInSlot(ctx, slot).Result(); err != nil || left != 0 {
			t.Errorf("the source still holds %d keys of slot %d (err %v)", left, slot, err)
		}
		for _, k := range keys {
			if v, err := cl.Nodes[m.to].Client().Get(ctx, k).Result(); err != nil || v != k {
				t.Errorf("GET %s on the target: %q, %v", k, v, err)
			}
		}
	}
}
