package hub

import (
	"math/bits"
	"strings"
)

// maxLevel bounds a skip list of 4^16 topics at the expected height.
const maxLevel = 16

// names is the set of topics ordered by name, for prefix routing: a skip
// list, so that inserting, removing and seeking cost O(log n). (A sorted
// slice cost O(n) per new token: 1,000 streams on 64 new tokens each held
// the hub's lock long enough to delay publishing by hundreds of ms.)
type names struct {
	head  nameNode
	level int
	rnd   uint64
}

type nameNode struct {
	t    *topic
	next []*nameNode
}

// randomLevel draws a height with P(h > k) = 4^-k.
func (s *names) randomLevel() int {
	if s.rnd == 0 {
		s.rnd = 0x9e3779b97f4a7c15
	}
	s.rnd ^= s.rnd << 13 // xorshift64: cheap, and no lock
	s.rnd ^= s.rnd >> 7
	s.rnd ^= s.rnd << 17
	return min(1+bits.TrailingZeros64(s.rnd|1<<62)/2, maxLevel)
}

// seek fills update with, per level, the last node before name.
func (s *names) seek(name string, update *[maxLevel]*nameNode) {
	x := &s.head
	for lv := s.level - 1; lv >= 0; lv-- {
		for x.next[lv] != nil && x.next[lv].t.name < name {
			x = x.next[lv]
		}
		update[lv] = x
	}
}

func (s *names) insert(t *topic) {
	if s.head.next == nil {
		s.head.next = make([]*nameNode, maxLevel)
	}
	var update [maxLevel]*nameNode
	s.seek(t.name, &update)
	lv := s.randomLevel()
	for ; s.level < lv; s.level++ {
		update[s.level] = &s.head
	}
	n := &nameNode{t: t, next: make([]*nameNode, lv)}
	for i := range lv {
		n.next[i] = update[i].next[i]
		update[i].next[i] = n
	}
}

func (s *names) remove(name string) {
	if s.head.next == nil {
		return
	}
	var update [maxLevel]*nameNode
	s.seek(name, &update)
	n := update[0].next[0]
	if n == nil || n.t.name != name {
		return
	}
	for i := range n.next {
		update[i].next[i] = n.next[i]
	}
	for s.level > 0 && s.head.next[s.level-1] == nil {
		s.level--
	}
}

// withPrefix calls fn for every topic whose name starts with prefix, in
// order.
func (s *names) withPrefix(prefix string, fn func(*topic)) {
	if s.head.next == nil {
		return
	}
	var update [maxLevel]*nameNode
	s.seek(prefix, &update)
	for n := update[0].next[0]; n != nil && strings.HasPrefix(n.t.name, prefix); n = n.next[0] {
		fn(n.t)
	}
}
