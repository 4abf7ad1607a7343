package redistest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// MoveSlot hands hash slot from master Nodes[from] to master Nodes[to] the
// way resharding does (redis-cli --cluster reshard): the target is set
// IMPORTING the slot from the source, the source MIGRATING it to the
// target, the slot's keys (if any) are MIGRATEd, and the slot is assigned
// to the target on the target first, then on the source, then on the other
// masters. The target's assignment closes an import, so the target takes a
// new config epoch, the greatest of the cluster, and its claim wins on
// every node. MoveSlot then waits until every node, replicas included,
// names the target as the slot's owner in CLUSTER SLOTS (the map cluster
// clients load), and fails the test naming the nodes that do not if that
// does not happen within 20 s.
//
// A bare CLUSTER SETSLOT NODE on the two masters bumps no config epoch: a
// third node may keep the old owner (its epoch is greater than the
// target's), and may even give the slot back to it on the target (an
// UPDATE): two masters then answer MOVED to each other (a broker test
// failed so once).
//
// Nodes must still be the masters (no failover since the start) and every
// node must be up.
func (c *Cluster) MoveSlot(slot, from, to int) {
	c.tb.Helper()
	if from == to || from < 0 || to < 0 || from >= len(c.Nodes) || to >= len(c.Nodes) {
		c.tb.Fatalf("redistest: move slot %d from master %d to master %d: the cluster has masters 0 to %d", slot, from, to, len(c.Nodes)-1)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := c.moveSlot(ctx, slot, from, to); err != nil {
		c.tb.Fatalf("redistest: move slot %d from master %d (%s) to master %d (%s): %v",
			slot, from, c.Nodes[from].Addr(), to, c.Nodes[to].Addr(), err)
	}
}

func (c *Cluster) moveSlot(ctx context.Context, slot, from, to int) error {
	all := append(slices.Clone(c.Nodes), c.Replicas...)
	clients := make([]*redis.Client, len(all))
	for i, s := range all {
		clients[i] = redis.NewClient(&redis.Options{Addr: s.Addr()})
		defer clients[i].Close()
	}
	src, dst := clients[from], clients[to]
	srcID, err := src.Do(ctx, "CLUSTER", "MYID").Text()
	if err != nil {
		return fmt.Errorf("source's CLUSTER MYID: %w", err)
	}
	dstID, err := dst.Do(ctx, "CLUSTER", "MYID").Text()
	if err != nil {
		return fmt.Errorf("target's CLUSTER MYID: %w", err)
	}
	// Every node must see the source as the owner to begin with: a move
	// from a master that does not own the slot is a mistake of the test.
	if err := waitOwner(ctx, all, clients, slot, srcID); err != nil {
		return fmt.Errorf("before the move: %w", err)
	}
	do := func(i int, args ...any) error {
		if err := clients[i].Do(ctx, args...).Err(); err != nil {
			return fmt.Errorf("%s on %s: %w", strings.TrimSpace(fmt.Sprintln(args...)), all[i].Addr(), err)
		}
		return nil
	}
	if err := do(to, "CLUSTER", "SETSLOT", slot, "IMPORTING", srcID); err != nil {
		return err
	}
	if err := do(from, "CLUSTER", "SETSLOT", slot, "MIGRATING", dstID); err != nil {
		return err
	}
	for {
		keys, err := src.Do(ctx, "CLUSTER", "GETKEYSINSLOT", slot, 100).StringSlice()
		if err != nil {
			return fmt.Errorf("CLUSTER GETKEYSINSLOT %d on %s: %w", slot, all[from].Addr(), err)
		}
		if len(keys) == 0 {
			break
		}
		args := []any{"MIGRATE", "127.0.0.1", c.Nodes[to].Port(), "", 0, 5000, "KEYS"}
		for _, k := range keys {
			args = append(args, k)
		}
		if err := do(from, args...); err != nil {
			return err
		}
	}
	// The target first (it takes a new config epoch), then the source,
	// then the others: redis-cli --cluster reshard's order.
	order := []int{to, from}
	for i := range c.Nodes {
		if i != to && i != from {
			order = append(order, i)
		}
	}
	for _, i := range order {
		if err := do(i, "CLUSTER", "SETSLOT", slot, "NODE", dstID); err != nil {
			return err
		}
	}
	if err := waitOwner(ctx, all, clients, slot, dstID); err != nil {
		return fmt.Errorf("after the move: %w", err)
	}
	return nil
}

// waitOwner waits until every node's CLUSTER SLOTS names the node with id
// as the owner (master) of slot. When ctx ends first, the error names
// each node that did not and the owner it named.
func waitOwner(ctx context.Context, all []*Server, clients []*redis.Client, slot int, id string) error {
	for {
		var differ []string
		for i, cl := range clients {
			owner, err := ownerIn(ctx, cl, slot)
			if err != nil {
				differ = append(differ, fmt.Sprintf("%s: %v", all[i].Addr(), err))
			} else if owner.ID != id {
				differ = append(differ, fmt.Sprintf("%s names %s (%s)", all[i].Addr(), owner.Addr, owner.ID))
			}
		}
		if len(differ) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("not every node names %s as the owner of slot %d: %s", id, slot, strings.Join(differ, "; "))
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// errUnassigned: no node serves the slot in a node's CLUSTER SLOTS.
var errUnassigned = errors.New("slot unassigned")

// ownerIn returns the master serving slot by cl's CLUSTER SLOTS.
func ownerIn(ctx context.Context, cl *redis.Client, slot int) (redis.ClusterNode, error) {
	//lint:ignore SA1019 go-redis's ClusterClient builds its slot map from CLUSTER SLOTS: that is the view that must agree
	ranges, err := cl.ClusterSlots(ctx).Result()
	if err != nil {
		return redis.ClusterNode{}, err
	}
	for _, r := range ranges {
		if r.Start <= slot && slot <= r.End && len(r.Nodes) > 0 {
			return r.Nodes[0], nil
		}
	}
	return redis.ClusterNode{}, errUnassigned
}
