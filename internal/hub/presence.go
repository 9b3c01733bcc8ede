package hub

import (
	"encoding/json"
	"slices"
	"strings"
	"time"

	"github.com/hasses-go/hasses/publish"
)

// Presence: who is subscribed to a token. The hub keeps two views of it.
//
//   - This node's streams, counted per (token, client id) on presence
//     tokens, and per token for occupancy when asked. A count's
//     transitions are Changes: the first stream is a join at once; the
//     last stream gone is a leave only once it has stayed gone for the
//     grace period, so that a reconnect is neither.
//   - The members of each presence token as its join and leave events
//     say: what a new stream's hasses-presence snapshot shows. The events
//     are in the log, so the snapshot agrees with the stream's cursor.
//
// On one node the hub turns a member Change into its join or leave event
// at once, under the lock that counted it. In a cluster (a replica hub) the
// engine makes the Changes cluster-wide (a client that joined on two nodes
// joined once) and the events come back through Apply, like every other.

// Events the presence tokens' streams receive.
const (
	EventJoin     = "hasses-join"
	EventLeave    = "hasses-leave"
	EventPresence = "hasses-presence"
)

// Defaults of PresenceConfig's zero fields.
const (
	DefaultPresenceGrace = 5 * time.Second
	DefaultPresenceMax   = 1000
)

// PresenceConfig says which tokens' subscribers see each other.
type PresenceConfig struct {
	// Targets are the presence tokens: exact tokens and "prefix*"
	// patterns. Their streams get join, leave and snapshot events.
	Targets []string
	// Grace is how long a client's last stream must stay gone before it
	// leaves (and a token's, before it is vacated); zero means
	// DefaultPresenceGrace, negative none.
	Grace time.Duration
	// Max bounds the clients listed per token, in listings and
	// snapshots; zero means DefaultPresenceMax.
	Max int
	// Occupancy, when set, receives a token's first stream (occupied) and
	// its last one gone for the grace period (vacated). It is called with
	// the hub's lock held and must not block. A replica hub hands these
	// Changes to Remote instead: the cluster makes them cluster-wide and
	// calls Occupancy itself.
	Occupancy func(token string, occupied bool)
	// Remote receives every Change of a replica hub (SetReplica): the
	// cluster engine sets it (SetPresenceRemote). Called with the hub's
	// lock held; must not block.
	Remote func(Change)
}

// SetPresenceRemote hands a replica's presence Changes to fn: the cluster
// makes them cluster-wide. Call it once, before serving.
func (h *Hub) SetPresenceRemote(fn func(Change)) { h.cfg.Presence.Remote = fn }

// PresenceOccupancy returns PresenceConfig.Occupancy: the cluster calls it
// for the cluster-wide transitions.
func (h *Hub) PresenceOccupancy() func(token string, occupied bool) { return h.cfg.Presence.Occupancy }

// Change is a transition of this node's presence: client ID (with User)
// joining or leaving presence token Token, or, with ID empty, Token
// getting its first stream or losing its last one (occupancy).
type Change struct {
	Token, ID, User string
	Join            bool
}

// Member and TokenPresence are what GET /presence answers: the publish
// package's types, so that the server's JSON and the client's are one.
type (
	Member        = publish.Member
	TokenPresence = publish.TokenPresence
)

type memberKey struct{ token, id string }

type localCount struct {
	n       int
	user    string
	leaveAt int64 // when n fell to zero: the leave is due at leaveAt + grace
}

type leaving struct {
	k  memberKey
	at int64 // localCount.leaveAt: a count back and fallen again is queued anew
}

type presence struct {
	exact    map[string]bool
	prefixes []string
	grace    int64
	local    map[memberKey]*localCount
	leaving  []leaving // counts that fell to zero, oldest first
	// members are the clients of each presence token as its join and
	// leave events say: client id → user.
	members map[string]map[string]string
}

func (p *presence) init(cfg *PresenceConfig) {
	if cfg.Grace == 0 {
		cfg.Grace = DefaultPresenceGrace
	}
	if cfg.Max <= 0 {
		cfg.Max = DefaultPresenceMax
	}
	p.grace = max(0, int64(cfg.Grace))
	p.exact = make(map[string]bool)
	for _, t := range cfg.Targets {
		if prefix, ok := strings.CutSuffix(t, "*"); ok {
			p.prefixes = append(p.prefixes, prefix)
		} else if t != "" {
			p.exact[t] = true
		}
	}
	p.local = make(map[memberKey]*localCount)
	p.members = make(map[string]map[string]string)
}

// IsPresence reports whether token is a presence token.
func (h *Hub) IsPresence(token string) bool { return h.pres.matches(token) }

func (p *presence) matches(token string) bool {
	if token == "*" || token == "" {
		return false
	}
	if p.exact[token] {
		return true
	}
	for _, pre := range p.prefixes {
		if strings.HasPrefix(token, pre) {
			return true
		}
	}
	return false
}

// presenceOpened counts a new stream of s. Called with h.mu held.
func (h *Hub) presenceOpened(s *Sub) {
	p := &h.pres
	if s.topics[0].t == h.all {
		return // a "*" stream is on no token
	}
	for _, st := range s.topics[1:] {
		t := st.t
		if h.cfg.Presence.Occupancy != nil {
			h.countUp(memberKey{token: t.name}, "")
		}
		if s.ID != "" && p.matches(t.name) {
			h.countUp(memberKey{token: t.name, id: s.ID}, s.user)
		}
	}
}

// presenceClosed counts a stream of s gone. Called with h.mu held.
func (h *Hub) presenceClosed(s *Sub, topics []subTopic) {
	p := &h.pres
	if topics[0].t == h.all {
		return
	}
	now := h.cfg.Now().UnixNano()
	for _, st := range topics[1:] {
		t := st.t
		if h.cfg.Presence.Occupancy != nil {
			h.countDown(memberKey{token: t.name}, now)
		}
		if s.ID != "" && p.matches(t.name) {
			h.countDown(memberKey{token: t.name, id: s.ID}, now)
		}
	}
}

func (h *Hub) countUp(k memberKey, user string) {
	p := &h.pres
	c := p.local[k]
	switch {
	case c == nil:
		p.local[k] = &localCount{n: 1, user: user}
		h.presenceChange(Change{Token: k.token, ID: k.id, User: user, Join: true})
	case c.n == 0: // back within the grace period: neither a leave nor a join
		c.n, c.leaveAt = 1, 0
	default:
		c.n++
	}
}

func (h *Hub) countDown(k memberKey, now int64) {
	p := &h.pres
	c := p.local[k]
	if c == nil || c.n == 0 {
		return
	}
	if c.n--; c.n > 0 {
		return
	}
	if p.grace == 0 {
		delete(p.local, k)
		h.presenceChange(Change{Token: k.token, ID: k.id, User: c.user})
		return
	}
	c.leaveAt = now
	p.leaving = append(p.leaving, leaving{k, now})
}

// presenceTick is how often Run sends the leaves that are due: a churn of
// hundreds of clients a second then leaves in small groups, not in one
// burst a second that every stream of those tokens would wait behind.
const presenceTick = 100 * time.Millisecond

// ExpirePresence sends the leaves (and vacancies) whose grace period is
// over; Trim does it too.
func (h *Hub) ExpirePresence() {
	h.mu.Lock()
	if len(h.pres.leaving) == 0 {
		h.mu.Unlock()
		return
	}
	h.expirePresence(h.cfg.Now().UnixNano())
	h.mu.Unlock()
	h.wakeOwners()
}

// expirePresence turns the counts that stayed at zero for the grace
// period into leaves. Called with h.mu held.
func (h *Hub) expirePresence(now int64) {
	p := &h.pres
	n := 0
	for ; n < len(p.leaving); n++ {
		l := p.leaving[n]
		if l.at+p.grace > now {
			break
		}
		k := l.k
		c := p.local[k]
		if c == nil || c.n > 0 || c.leaveAt != l.at {
			continue // came back (and may have fallen again, queued anew)
		}
		delete(p.local, k)
		h.presenceChange(Change{Token: k.token, ID: k.id, User: c.user})
	}
	clear(p.leaving[:n])
	p.leaving = p.leaving[n:]
}

// presenceChange reports a transition. Called with h.mu held.
func (h *Hub) presenceChange(c Change) {
	switch {
	case h.replica:
		if r := h.cfg.Presence.Remote; r != nil {
			r(c)
		}
	case c.ID == "":
		h.cfg.Presence.Occupancy(c.Token, c.Join)
	default:
		h.seq++
		h.publishLocked(h.seq, h.cfg.Now().UnixNano(), PresenceMessage(c))
	}
}

// PresenceMessage is the join or leave event of member change c.
func PresenceMessage(c Change) Message {
	data, _ := json.Marshal(struct {
		Token string `json:"token"`
		ID    string `json:"id"`
		User  string `json:"user,omitempty"`
	}{c.Token, c.ID, c.User})
	ev := EventLeave
	if c.Join {
		ev = EventJoin
	}
	return Message{Targets: []string{c.Token}, Event: ev, Data: data, Presence: &c}
}

// applyPresence updates the members of a presence token from its join or
// leave event. Called with h.mu held.
func (h *Hub) applyPresence(c *Change) {
	p := &h.pres
	m := p.members[c.Token]
	if c.Join {
		if m == nil {
			m = make(map[string]string)
			p.members[c.Token] = m
		}
		m[c.ID] = c.User
		return
	}
	delete(m, c.ID)
	if len(m) == 0 {
		delete(p.members, c.Token)
	}
}

// SetMembers replaces the members of the presence tokens (token → client
// id → user): a node joining a cluster takes them from Redis, as of a
// position at or after the log entries it has read; applying the entries
// that follow, in order, then brings it to the cluster's view (joins and
// leaves are set operations).
func (h *Hub) SetMembers(m map[string]map[string]string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.pres.members = m
}

// snapshot is the hasses-presence event for a stream opening on tokens:
// the members of its presence tokens, or nil if it has none. Called with
// h.mu held.
func (h *Hub) snapshot(tokens []string) []byte {
	type members struct { // TokenPresence without streams
		Token   string   `json:"token"`
		Count   int      `json:"count"`
		Clients []Member `json:"clients"`
	}
	var list []members
	for _, tok := range tokens {
		if !h.pres.matches(tok) || slices.ContainsFunc(list, func(tp members) bool { return tp.Token == tok }) {
			continue
		}
		m := h.pres.members[tok]
		tp := members{Token: tok, Count: len(m), Clients: make([]Member, 0, min(len(m), h.cfg.Presence.Max))}
		for id, user := range m {
			tp.Clients = append(tp.Clients, Member{ID: id, User: user})
		}
		tp.Clients = firstByID(tp.Clients, h.cfg.Presence.Max)
		list = append(list, tp)
	}
	if list == nil {
		return nil
	}
	data, _ := json.Marshal(struct {
		Presence []members `json:"presence"`
	}{list})
	// No id line: the snapshot is this stream's, not in the log, and must
	// leave the client's last event id alone.
	out := make([]byte, 0, len(data)+len(EventPresence)+16)
	out = append(append(append(out, "event: "...), EventPresence...), "\ndata: "...)
	return append(append(out, data...), "\n\n"...)
}

// firstByID sorts members by id and keeps at most n.
func firstByID(ms []Member, n int) []Member {
	slices.SortFunc(ms, func(a, b Member) int { return strings.Compare(a.ID, b.ID) })
	if len(ms) > n {
		clear(ms[n:])
		ms = ms[:n]
	}
	return ms
}

// Presence lists this node's streams on each token: their number, and the
// clients (distinct ids) among them, at most PresenceConfig.Max listed by
// id, with the user each authenticated as. It walks the tokens' streams,
// so its cost is theirs, not the hub's.
func (h *Hub) Presence(tokens []string) []TokenPresence {
	out := make([]TokenPresence, 0, len(tokens))
	for _, tok := range tokens {
		h.mu.Lock()
		tp := TokenPresence{Token: tok, Clients: []Member{}}
		byID := make(map[string]int)
		if t := h.topics[tok]; t != nil {
			tp.Streams = int(t.nsubs)
			for _, ow := range t.subs {
				for _, r := range ow.refs {
					s := r.s
					if s.ID == "" {
						continue
					}
					if i, ok := byID[s.ID]; ok {
						tp.Clients[i].Streams++
						continue
					}
					byID[s.ID] = len(tp.Clients)
					tp.Clients = append(tp.Clients, Member{ID: s.ID, User: s.user, Streams: 1})
				}
			}
		}
		h.mu.Unlock()
		tp.Count = len(tp.Clients)
		tp.Clients = firstByID(tp.Clients, h.cfg.Presence.Max)
		out = append(out, tp)
	}
	return out
}

// MergePresence adds b's streams and clients (another node's answer for
// the same token) into a, listing at most n clients.
func MergePresence(a, b TokenPresence, n int) TokenPresence {
	a.Streams += b.Streams
	byID := make(map[string]int, len(a.Clients))
	for i, m := range a.Clients {
		byID[m.ID] = i
	}
	for _, m := range b.Clients {
		if i, ok := byID[m.ID]; ok {
			a.Clients[i].Streams += m.Streams
			if a.Clients[i].User == "" {
				a.Clients[i].User = m.User
			}
			continue
		}
		byID[m.ID] = len(a.Clients)
		a.Clients = append(a.Clients, m)
	}
	// Exact unless a node's list was cut at n: then at least this many.
	a.Count = max(a.Count, b.Count, len(a.Clients))
	a.Clients = firstByID(a.Clients, n)
	return a
}

// PresenceMax is the most clients listed per token.
func (h *Hub) PresenceMax() int { return h.cfg.Presence.Max }
