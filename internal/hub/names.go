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
// the hub's lock long enough to delay publishing by hundreds of ms.) Its
// nodes are the topics themselves (topic.links): a new topic costs no
// allocation here but for the upper levels of one node in four.
type names struct {
	head  nameLinks
	level int
	rnd   uint64
}

// nameLinks are a skip-list node's forward links.
type nameLinks struct {
	next0 *topic   // level 0
	up    []*topic // levels 1 and up, for a node taller than one level
}

func (n *nameLinks) next(lv int) *topic {
	if lv == 0 {
		return n.next0
	}
	return n.up[lv-1]
}

func (n *nameLinks) setNext(lv int, t *topic) {
	if lv == 0 {
		n.next0 = t
	} else {
		n.up[lv-1] = t
	}
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
func (s *names) seek(name string, update *[maxLevel]*nameLinks) {
	x := &s.head
	for lv := s.level - 1; lv >= 0; lv-- {
		for n := x.next(lv); n != nil && n.name < name; n = x.next(lv) {
			x = &n.links
		}
		update[lv] = x
	}
}

func (s *names) insert(t *topic) {
	if s.head.up == nil {
		s.head.up = make([]*topic, maxLevel-1)
	}
	var update [maxLevel]*nameLinks
	s.seek(t.name, &update)
	lv := s.randomLevel()
	for ; s.level < lv; s.level++ {
		update[s.level] = &s.head
	}
	if lv > 1 {
		t.links.up = make([]*topic, lv-1)
	}
	for i := range lv {
		t.links.setNext(i, update[i].next(i))
		update[i].setNext(i, t)
	}
}

func (s *names) remove(name string) {
	if s.head.up == nil {
		return
	}
	var update [maxLevel]*nameLinks
	s.seek(name, &update)
	t := update[0].next0
	if t == nil || t.name != name {
		return
	}
	for i := range 1 + len(t.links.up) {
		update[i].setNext(i, t.links.next(i))
	}
	t.links = nameLinks{} // a removed topic may stay referenced a while: it must not keep its neighbours
	for s.level > 0 && s.head.next(s.level-1) == nil {
		s.level--
	}
}

// withPrefix calls fn for every topic whose name starts with prefix, in
// order.
func (s *names) withPrefix(prefix string, fn func(*topic)) {
	if s.head.up == nil {
		return
	}
	var update [maxLevel]*nameLinks
	s.seek(prefix, &update)
	for t := update[0].next0; t != nil && strings.HasPrefix(t.name, prefix); t = t.links.next0 {
		fn(t)
	}
}
