package hub

import "time"

// Idempotent publication: a message with a Key publishes once within the
// window; the same key again publishes nothing and answers the first
// Result. It is decided where publications are numbered: here on a single
// node, in Redis (the cluster's publish script) in a cluster, with the
// same bounds.
const (
	// MaxKeyLen bounds an idempotency key.
	MaxKeyLen = 128
	// DefaultIdempotencyWindow is how long a key is remembered
	// (-idempotency-window).
	DefaultIdempotencyWindow = 5 * time.Minute
	// MaxIdempotencyKeys bounds the keys remembered: past it, the oldest
	// are forgotten first (about 300 bytes each, 20 MB in all).
	MaxIdempotencyKeys = 65536
)

// keyed remembers the results of keyed publications, oldest first.
type keyed struct {
	results map[string]Result
	order   []keyedAt // oldest first
}

type keyedAt struct {
	key string
	at  int64 // Unix nanoseconds
}

// lookup returns the result of key if it was published within window.
func (k *keyed) lookup(key string, now int64, window time.Duration) (Result, bool) {
	k.expire(now, window)
	r, ok := k.results[key]
	return r, ok
}

// remember records the result of key, forgetting the oldest keys past the
// window or the cap.
func (k *keyed) remember(key string, r Result, now int64, window time.Duration) {
	if k.results == nil {
		k.results = make(map[string]Result)
	}
	k.results[key] = r
	k.order = append(k.order, keyedAt{key, now})
	k.expire(now, window)
	if over := len(k.order) - MaxIdempotencyKeys; over > 0 {
		k.pop(over)
	}
}

func (k *keyed) expire(now int64, window time.Duration) {
	n := 0
	for n < len(k.order) && now-k.order[n].at > int64(window) {
		n++
	}
	k.pop(n)
}

func (k *keyed) pop(n int) {
	if n == 0 {
		return
	}
	for _, e := range k.order[:n] {
		delete(k.results, e.key)
	}
	clear(k.order[:n])
	k.order = k.order[n:]
	if cap(k.order) > 64 && len(k.order) < cap(k.order)/4 {
		k.order = append([]keyedAt(nil), k.order...)
	}
}
