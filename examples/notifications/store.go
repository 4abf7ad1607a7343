package main

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"sync"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
)

// Notification is one notification as stored and as sent: the data of the
// `notification` event.
type Notification struct {
	// Seq numbers the user's notifications 1, 2, 3…: a device that holds
	// n has applied every one up to n, so one number says what it misses.
	Seq uint64 `json:"seq"`
	// Data is the app's payload, as it was posted.
	Data json.RawMessage `json:"data"`
}

// Store keeps each user's notifications, numbered, so that what pub/sub
// lost (a device reconnecting, an instance resubscribing) can be read again.
// Both implementations keep only a user's newest notifications, as many as
// their backlog says: a device further behind than that is told to reset.
type Store interface {
	// Add numbers data as the user's next notification and keeps it. The
	// number and the entry are written together: a reader never sees a
	// number without its notification.
	Add(ctx context.Context, user string, data json.RawMessage) (Notification, error)
	// Since returns the user's kept notifications numbered after `after`,
	// oldest first, and the number of the last one ever added (0: none).
	// Both come from one moment of the store.
	Since(ctx context.Context, user string, after uint64) (kept []Notification, last uint64, err error)
}

// DefaultBacklog is how many notifications a store keeps per user unless
// told otherwise: what a device may miss and still catch up on.
const DefaultBacklog = 100

// MemoryStore is a Store in this process's memory, for a single instance
// without Redis: it is gone when the process ends, which devices then
// learn as a reset (their numbers are beyond the store's).
type MemoryStore struct {
	backlog int
	mu      sync.Mutex
	users   map[string]*memoryLog
}

type memoryLog struct {
	last uint64
	kept []Notification
}

// NewMemoryStore returns an empty store keeping backlog notifications per
// user (DefaultBacklog if not positive).
func NewMemoryStore(backlog int) *MemoryStore {
	if backlog <= 0 {
		backlog = DefaultBacklog
	}
	return &MemoryStore{backlog: backlog, users: map[string]*memoryLog{}}
}

// Add implements Store.
func (s *MemoryStore) Add(_ context.Context, user string, data json.RawMessage) (Notification, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.users[user]
	if l == nil {
		l = &memoryLog{}
		s.users[user] = l
	}
	l.last++
	n := Notification{Seq: l.last, Data: slices.Clone(data)}
	l.kept = append(l.kept, n)
	if extra := len(l.kept) - s.backlog; extra > 0 {
		// Shift in place rather than reslice, so that the array does not
		// keep growing behind the window.
		l.kept = slices.Delete(l.kept, 0, extra)
	}
	return n, nil
}

// Since implements Store.
func (s *MemoryStore) Since(_ context.Context, user string, after uint64) ([]Notification, uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.users[user]
	if l == nil {
		return nil, 0, nil
	}
	i, _ := slices.BinarySearchFunc(l.kept, after+1, func(n Notification, seq uint64) int {
		return cmp.Compare(n.Seq, seq)
	})
	return slices.Clone(l.kept[i:]), l.last, nil
}

// RedisStore is a Store on Redis, shared by every instance and worker on
// it: the counter `notif:seq:{<user>}` (INCR) and the sorted set
// `notif:{<user>}`, scored by number, trimmed to the backlog. The braces
// put both keys of a user in one slot, so the scripts also run on a Redis
// Cluster, where a script may only touch the keys of one slot.
type RedisStore struct {
	rdb     redis.UniversalClient
	backlog int
	add     *redis.Script
	since   *redis.Script
}

// addScript numbers, keeps and trims in one step: run as separate commands,
// a crash between INCR and ZADD would leave a hole in the numbers, which
// looks like a trimmed backlog and resets the devices that reach it. The
// member is the notification's JSON, unique since it holds the number.
//
// KEYS[3] is the add's own key, named by a token drawn for the call: go-redis
// sends a command again when its reply was lost (MaxRetries), and the
// same script with the same token then finds the number it gave and
// stores nothing twice. The key lives addMemory seconds, far longer than
// any retry.
const addScript = `
local done = redis.call('GET', KEYS[3])
if done then return tonumber(done) end
local seq = redis.call('INCR', KEYS[1])
redis.call('ZADD', KEYS[2], seq, '{"seq":' .. seq .. ',"data":' .. ARGV[1] .. '}')
redis.call('ZREMRANGEBYRANK', KEYS[2], 0, -tonumber(ARGV[2]) - 1)
redis.call('SET', KEYS[3], seq, 'EX', ARGV[3])
return seq
`

// addMemory is how long, in seconds, an add's key remembers its number.
const addMemory = 60

// sinceScript reads the counter and the kept notifications at one moment,
// so that "trimmed" and "lost" are told apart from "nothing new".
const sinceScript = `
local last = redis.call('GET', KEYS[1]) or '0'
return {last, redis.call('ZRANGEBYSCORE', KEYS[2], '(' .. ARGV[1], '+inf')}
`

// NewRedisStore returns a store on rdb keeping backlog notifications per
// user (DefaultBacklog if not positive). Give every process that adds to
// it the same backlog.
func NewRedisStore(rdb redis.UniversalClient, backlog int) *RedisStore {
	if backlog <= 0 {
		backlog = DefaultBacklog
	}
	return &RedisStore{rdb: rdb, backlog: backlog, add: redis.NewScript(addScript), since: redis.NewScript(sinceScript)}
}

func redisKeys(user string) []string {
	return []string{"notif:seq:{" + user + "}", "notif:{" + user + "}"}
}

// Add implements Store. data must be JSON: the script pastes it into the
// member as it is.
func (s *RedisStore) Add(ctx context.Context, user string, data json.RawMessage) (Notification, error) {
	return s.addOnce(ctx, user, data, uuid.NewString())
}

// addOnce is Add with the token that names the add (see addScript): the
// same token stores once, however many times it is sent.
func (s *RedisStore) addOnce(ctx context.Context, user string, data json.RawMessage, token string) (Notification, error) {
	if !json.Valid(data) {
		return Notification{}, fmt.Errorf("notification for %q: data is not JSON", user)
	}
	keys := append(redisKeys(user), "notif:add:{"+user+"}:"+token)
	seq, err := s.add.Run(ctx, s.rdb, keys, string(data), s.backlog, addMemory).Uint64()
	if err != nil {
		return Notification{}, fmt.Errorf("store a notification for %q: %w", user, err)
	}
	return Notification{Seq: seq, Data: data}, nil
}

// Since implements Store.
func (s *RedisStore) Since(ctx context.Context, user string, after uint64) ([]Notification, uint64, error) {
	res, err := s.since.Run(ctx, s.rdb, redisKeys(user), after).Slice()
	if err != nil {
		return nil, 0, fmt.Errorf("read the notifications of %q: %w", user, err)
	}
	if len(res) != 2 {
		return nil, 0, fmt.Errorf("read the notifications of %q: unexpected reply %v", user, res)
	}
	lastText, _ := res[0].(string)
	last, err := strconv.ParseUint(lastText, 10, 64)
	if err != nil {
		return nil, 0, fmt.Errorf("read the notifications of %q: counter %q: %w", user, lastText, err)
	}
	members, _ := res[1].([]any)
	kept := make([]Notification, 0, len(members))
	for _, m := range members {
		var n Notification
		text, _ := m.(string)
		if err := json.Unmarshal([]byte(text), &n); err != nil {
			return nil, 0, fmt.Errorf("read the notifications of %q: entry %q: %w", user, text, err)
		}
		kept = append(kept, n)
	}
	return kept, last, nil
}
