package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// sentinelMaster is the name the lab's Sentinel monitors.
const sentinelMaster = "fxws"

// sentinelSet is a master, its replica and a Sentinel watching them.
type sentinelSet struct {
	master, replica, sentinel *redisServer
	dir                       string
}

func (s *sentinelSet) kill() {
	s.sentinel.kill()
	s.replica.kill()
	s.master.kill()
	os.RemoveAll(s.dir)
}

func (s *sentinelSet) client() *redis.SentinelClient {
	return redis.NewSentinelClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", s.sentinel.port)})
}

// startSentinelSet starts the three and waits until the replica is in sync
// and the Sentinel knows it, so that a failover can pick it. The Sentinel
// declares the master down after 500 ms of silence (quorum 1).
func startSentinelSet(ctx context.Context) (_ *sentinelSet, err error) {
	s := &sentinelSet{}
	defer func() {
		if err != nil {
			s.kill()
		}
	}()
	ports := make([]int, 3)
	for i := range ports {
		if ports[i], err = freePort(); err != nil {
			return nil, err
		}
	}
	// Every file goes to one temporary directory: a replica writes the
	// RDB of its full sync even with saving off.
	if s.dir, err = os.MkdirTemp("", "fxws-lab-sentinel-"); err != nil {
		return nil, err
	}
	if s.master, err = startRedis(ports[0], "--dir", s.dir, "--dbfilename", "master.rdb"); err != nil {
		return nil, err
	}
	if s.replica, err = startRedis(ports[1], "--dir", s.dir, "--dbfilename", "replica.rdb",
		"--replicaof", "127.0.0.1", strconv.Itoa(ports[0]),
		"--repl-diskless-sync", "yes", "--repl-diskless-sync-delay", "0"); err != nil {
		return nil, err
	}
	conf := filepath.Join(s.dir, "sentinel.conf")
	body := fmt.Sprintf("sentinel monitor %s 127.0.0.1 %d 1\nsentinel down-after-milliseconds %[1]s 500\nsentinel failover-timeout %[1]s 5000\ndir %[3]s\n",
		sentinelMaster, ports[0], s.dir)
	if err = os.WriteFile(conf, []byte(body), 0o600); err != nil {
		return nil, err
	}
	if s.sentinel, err = startRedis(ports[2], conf, "--sentinel"); err != nil {
		return nil, err
	}
	sc := s.client()
	defer sc.Close()
	rc := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", ports[1])})
	defer rc.Close()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		info, _ := rc.Info(ctx, "replication").Result()
		replicas, _ := sc.Replicas(ctx, sentinelMaster).Result()
		for _, r := range replicas {
			if strings.Contains(info, "master_link_status:up") && r["flags"] == "slave" && r["port"] == strconv.Itoa(ports[1]) {
				return s, nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return nil, errors.New("lab: the sentinel never saw the replica in sync")
}

// runSentinel runs two instances on a Sentinel-watched master and replica
// through failovers: the master killed, and a planned failover (SENTINEL
// FAILOVER: the old master stays up, and a master, until the Sentinel
// demotes it), the latter also with only instance A publishing, so that B
// must find out by itself. Each run starts afresh.
func runSentinel(ctx context.Context, c config, bin string) (map[string]any, error) {
	res := map[string]any{}
	for _, run := range []struct {
		name    string
		planned bool
		pubs    string
	}{
		{"killed", false, "AB"},
		{"planned", true, "AB"},
		{"planned_B_silent", true, "A"},
	} {
		r, err := sentinelRun(ctx, c, bin, run.planned, run.pubs)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", run.name, err)
		}
		res[run.name] = r
	}
	return res, nil
}

func sentinelRun(ctx context.Context, c config, bin string, planned bool, pubsOn string) (map[string]any, error) {
	set, err := startSentinelSet(ctx)
	if err != nil {
		return nil, err
	}
	defer set.kill()
	url := fmt.Sprintf("REDIS_URL=redis://127.0.0.1:%d?master_name=%s", set.sentinel.port, sentinelMaster)
	a, b, stop, err := startDemoPair(ctx, bin, c.cpu, url)
	if err != nil {
		return nil, err
	}
	defer stop()
	perSide := c.n(20)
	recv, hangUp, err := connectReceivers(ctx, a, b, perSide)
	defer hangUp()
	if err != nil {
		return nil, err
	}
	pubs := map[string]*publisher{}
	for _, o := range pubsOn {
		srv := a
		if o == 'B' {
			srv = b
		}
		pubs[string(o)] = &publisher{origin: string(o), srv: srv, http: &http.Client{Timeout: 10 * time.Second}}
	}
	pctx, pstop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for _, p := range pubs {
		wg.Add(1)
		go func() { defer wg.Done(); p.run(pctx, 20*time.Millisecond, "x") }()
	}
	time.Sleep(c.dur(3 * time.Second))
	sc := set.client()
	defer sc.Close()
	faultAt := nowUS()
	if planned {
		if err := sc.Failover(ctx, sentinelMaster).Err(); err != nil {
			pstop()
			return nil, fmt.Errorf("sentinel failover: %w", err)
		}
	} else {
		set.master.kill()
	}
	switchAt := int64(-1)
	want := strconv.Itoa(set.replica.port)
	for end := time.Now().Add(c.dur(12 * time.Second)); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		if switchAt < 0 {
			if addr, err := sc.GetMasterAddrByName(ctx, sentinelMaster).Result(); err == nil && len(addr) == 2 && addr[1] == want {
				switchAt = nowUS()
			}
		}
	}
	pstop()
	wg.Wait()
	time.Sleep(2 * time.Second) // drain

	res := map[string]any{"clients_per_instance": perSide, "publish_rate_per_instance": 50, "publishers": pubsOn}
	if switchAt >= 0 {
		res["sentinel_switched_after_ms"] = round2(float64(switchAt-faultAt) / 1000)
	} else {
		res["sentinel_switched_after_ms"] = "never"
	}
	for o, p := range pubs {
		other := "B"
		if o == "B" {
			other = "A"
		}
		var published, lost, localWant, localGot int
		var lastLost int64 = -1
		for seq, at := range p.sentAt {
			if at < faultAt {
				continue
			}
			published++
			for _, r := range recv[other] {
				r.mu.Lock()
				_, ok := r.got[o][int64(seq)]
				r.mu.Unlock()
				if !ok {
					lost++
					lastLost = max(lastLost, at)
				}
			}
			for _, r := range recv[o] {
				localWant++
				r.mu.Lock()
				if _, ok := r.got[o][int64(seq)]; ok {
					localGot++
				}
				r.mu.Unlock()
			}
		}
		d := o + "_to_" + other
		res[d+"_published_from_the_fault"] = published
		res[d+"_lost"] = lost
		if lastLost >= 0 {
			res[d+"_last_lost_published_ms_after_fault"] = round2(float64(lastLost-faultAt) / 1000)
		}
		res[o+"_local_deliveries_from_the_fault"] = fmt.Sprintf("%d/%d", localGot, localWant)
		res[o+"_REST_errors"] = p.restErrors
	}
	for name, s := range map[string]*server{"A": a, "B": b} {
		res[name+"_alive"] = s.alive()
		if v, err := s.vars(); err == nil {
			res[name+"_publish_errors"] = v.Stats["PublishErrors"]
		}
	}
	return res, nil
}
