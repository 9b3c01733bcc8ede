// Package dashboard is the live view of the admin listener: a sampler that
// reads the server's counters once a second into a fixed ring of the last
// minutes, and an HTML page (embedded, no external assets, no build step)
// that draws them, kept up to date through Server-Sent Events.
package dashboard

import (
	"context"
	"encoding/json"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults for Config's zero fields.
const (
	DefaultInterval = time.Second
	DefaultWindow   = 5 * time.Minute
	DefaultTop      = 10
	DefaultViewers  = 16
)

// Count is one named cumulative counter, such as a refusal reason.
type Count struct {
	Name string
	N    int64
}

// Counters is what the server reports at every sample: gauges, and
// cumulative counters the sampler turns into rates.
type Counters struct {
	Connections, Streams int64 // open connections on the SSE port; those streaming
	Topics, Subscribers  int
	Published, Delivered int64   // cumulative: events in (publications), events out (deliveries)
	Lagged               int64   // cumulative: streams closed as too slow
	Refused              []Count // cumulative, by reason; the same names in the same order every time
	HistoryEvents        int
	HistoryBytes         int64
}

// Token is one row of a top-token table.
type Token struct {
	Token       string
	Subscribers int
	Events      int64 // events since the previous TopTokens call
}

// Source is the server as the dashboard sees it.
type Source interface {
	DashboardCounters() Counters
	// TopTokens returns the n tokens with most subscribers and the n with
	// most events since the previous call. It may be costly (it walks every
	// token), so it is only called while someone watches.
	TopTokens(n int) (bySubs, byEvents []Token)
}

// Config sets up a Dashboard.
type Config struct {
	Interval time.Duration // between samples
	Window   time.Duration // how far back the charts go
	Top      int           // rows of the top-token tables
	Viewers  int           // concurrent live pages; more get 503
	Version  string        // shown in the header
	Login    bool          // the page is behind a secret: offer to log out
	Now      func() time.Time
}

// Sample is one point of the charts. Rates are per second over the
// interval; Lagged and Refused are counts over the interval.
type Sample struct {
	T           int64   `json:"t"` // Unix milliseconds
	Conns       int64   `json:"conns"`
	Streams     int64   `json:"streams"`
	Topics      int     `json:"topics"`
	Subscribers int     `json:"subs"`
	In          float64 `json:"in"`
	Out         float64 `json:"out"`
	Lagged      int64   `json:"lagged"`
	Refused     []int64 `json:"refused"` // in the order of the reasons
	HistEvents  int     `json:"histEvents"`
	HistBytes   int64   `json:"histBytes"`
}

// TopRow is a row of a top-token table as the page gets it.
type TopRow struct {
	Token       string  `json:"token"`
	Subscribers int     `json:"subs"`
	Rate        float64 `json:"rate"` // events per second
}

// Top holds the two top-token tables.
type Top struct {
	BySubs  []TopRow `json:"bySubs"`
	ByRate  []TopRow `json:"byRate"`
	Watched bool     `json:"watched"` // false: not walked since nobody watched, the tables are stale
}

// Dashboard samples a Source and serves the page.
type Dashboard struct {
	src Source
	cfg Config

	viewers atomic.Int32
	done    chan struct{} // closed when Run returns: live pages end

	mu       sync.Mutex
	ring     []Sample // fixed length: the window
	next     int      // ring index of the next sample
	n        int      // samples held
	reasons  []string
	prev     Counters
	prevAt   time.Time
	top      Top
	topAt    time.Time // of the last TopTokens call
	counting bool      // walks have gone on since topAt without a pause
	nextWalk time.Time // only the sampler touches it
	seq      uint64
	last     []byte        // the newest "sample" event, encoded once for every page
	tick     chan struct{} // closed and replaced at every sample
}

// New returns a dashboard over src; call Run to sample.
func New(src Source, cfg Config) *Dashboard {
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.Window <= 0 {
		cfg.Window = DefaultWindow
	}
	if cfg.Top <= 0 {
		cfg.Top = DefaultTop
	}
	if cfg.Viewers <= 0 {
		cfg.Viewers = DefaultViewers
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	size := max(int(cfg.Window/cfg.Interval), 2)
	return &Dashboard{src: src, cfg: cfg, ring: make([]Sample, size), tick: make(chan struct{}), done: make(chan struct{})}
}

// Run samples every interval until ctx is done; then the live pages end.
func (d *Dashboard) Run(ctx context.Context) {
	defer close(d.done)
	t := time.NewTicker(d.cfg.Interval)
	defer t.Stop()
	d.sample()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			d.sample()
		}
	}
}

// sample reads the source once and records the result.
func (d *Dashboard) sample() {
	c := d.src.DashboardCounters()
	now := d.cfg.Now()
	watched := d.viewers.Load() > 0
	var bySubs, byEvents []Token
	walked := watched && !now.Before(d.nextWalk)
	if walked {
		bySubs, byEvents = d.src.TopTokens(d.cfg.Top)
		// The walk holds the hub's lock: keep it under 1% of the time, so
		// with millions of tokens the tables refresh less often.
		d.nextWalk = now.Add(walkShare * d.cfg.Now().Sub(now))
	}
	d.record(now, c, watched, walked, bySubs, byEvents)
}

// walkShare is the least ratio of the time between two token walks to the
// time one walk takes.
const walkShare = 100

// record turns counters read at now into a sample, appends it to the ring
// and wakes the live pages.
func (d *Dashboard) record(now time.Time, c Counters, watched, walked bool, bySubs, byEvents []Token) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.reasons == nil {
		for _, r := range c.Refused {
			d.reasons = append(d.reasons, r.Name)
		}
	}
	s := Sample{
		T: now.UnixMilli(), Conns: c.Connections, Streams: c.Streams, Topics: c.Topics, Subscribers: c.Subscribers,
		HistEvents: c.HistoryEvents, HistBytes: c.HistoryBytes,
	}
	// Reuse the slot's slice: the ring's memory stays what it was at start.
	slot := &d.ring[d.next]
	s.Refused = slot.Refused[:0]
	if cap(s.Refused) < len(d.reasons) {
		s.Refused = make([]int64, 0, len(d.reasons))
	}
	if !d.prevAt.IsZero() {
		if dt := now.Sub(d.prevAt).Seconds(); dt > 0 {
			s.In = rate(c.Published-d.prev.Published, dt)
			s.Out = rate(c.Delivered-d.prev.Delivered, dt)
		}
		s.Lagged = max(c.Lagged-d.prev.Lagged, 0)
	}
	for i := range d.reasons {
		var n int64
		if i < len(c.Refused) && i < len(d.prev.Refused) && !d.prevAt.IsZero() {
			n = max(c.Refused[i].N-d.prev.Refused[i].N, 0)
		}
		s.Refused = append(s.Refused, n)
	}
	*slot = s
	d.next = (d.next + 1) % len(d.ring)
	d.n = min(d.n+1, len(d.ring))
	buf := d.prev.Refused[:0] // keep a copy: the source may reuse its slice
	d.prev = c
	d.prev.Refused = append(buf, c.Refused...)
	d.prevAt = now

	if !watched {
		d.counting = false
		d.top.Watched = false
	}
	if walked {
		d.top.Watched = true
		d.top.BySubs = d.top.BySubs[:0]
		for _, t := range bySubs {
			d.top.BySubs = append(d.top.BySubs, TopRow{Token: t.Token, Subscribers: t.Subscribers})
		}
		// Event counts cover the time since the previous walk, a rate only
		// if walks went on without a pause (nobody watching) in between.
		d.top.ByRate = d.top.ByRate[:0]
		if dt := now.Sub(d.topAt).Seconds(); d.counting && dt > 0 {
			for _, t := range byEvents {
				d.top.ByRate = append(d.top.ByRate, TopRow{Token: t.Token, Subscribers: t.Subscribers, Rate: rate(t.Events, dt)})
			}
		}
		d.topAt = now
		d.counting = true
	}

	d.seq++
	top := d.top
	d.last, _ = json.Marshal(sampleEvent{Seq: d.seq, Sample: s, Top: &top})
	close(d.tick)
	d.tick = make(chan struct{})
}

// rate is n per dt seconds, to one decimal; a counter that went back (a
// front end restarted) counts as zero.
func rate(n int64, dt float64) float64 {
	if n <= 0 {
		return 0
	}
	return float64(int64(float64(n)/dt*10+0.5)) / 10
}

// snapshot is the first event a page gets: the settings and the whole ring.
type snapshot struct {
	Interval int64    `json:"interval"` // milliseconds
	Window   int64    `json:"window"`   // milliseconds
	Version  string   `json:"version"`
	Login    bool     `json:"login"`
	Reasons  []string `json:"reasons"`
	Samples  []Sample `json:"samples"` // oldest first
	Top      Top      `json:"top"`
	Seq      uint64   `json:"seq"`
}

// Samples returns the samples held, oldest first.
func (d *Dashboard) Samples() []Sample {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := d.samplesLocked()
	for i := range out {
		out[i].Refused = append([]int64(nil), out[i].Refused...) // the ring reuses its slices
	}
	return out
}

func (d *Dashboard) samplesLocked() []Sample {
	out := make([]Sample, 0, d.n)
	for i := range d.n {
		out = append(out, d.ring[(d.next-d.n+i+len(d.ring))%len(d.ring)])
	}
	return out
}

// subscribe returns the encoded snapshot, its sequence number and the
// channel that is closed at the next sample, taken together so a page
// misses no sample in between.
func (d *Dashboard) subscribe() ([]byte, uint64, <-chan struct{}) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.snapshotLocked(), d.seq, d.tick
}

func (d *Dashboard) snapshotLocked() []byte {
	b, _ := json.Marshal(snapshot{
		Interval: d.cfg.Interval.Milliseconds(), Window: d.cfg.Window.Milliseconds(),
		Version: d.cfg.Version, Login: d.cfg.Login, Reasons: d.reasons,
		Samples: d.samplesLocked(), Top: d.top, Seq: d.seq,
	})
	return b
}

// sampleEvent is one "sample" event; Top only comes with the newest.
type sampleEvent struct {
	Seq    uint64 `json:"seq"`
	Sample Sample `json:"sample"`
	Top    *Top   `json:"top,omitempty"`
}

// since returns what a page that has seen samples up to seq must get: the
// "sample" events after it (usually one, encoded once for every page), or,
// if it fell behind by more than the ring, a new "init" snapshot. It also
// returns the newest sequence number and the channel for the next sample.
func (d *Dashboard) since(seq uint64) (events [][]byte, init []byte, newest uint64, tick <-chan struct{}) {
	d.mu.Lock()
	defer d.mu.Unlock()
	missed := d.seq - seq
	switch {
	case missed == 0:
	case missed > uint64(d.n):
		init = d.snapshotLocked()
	default:
		// A page whose writes were slow: the older samples come from the ring.
		for k := missed - 1; k >= 1; k-- {
			s := d.ring[(d.next-1-int(k)+2*len(d.ring))%len(d.ring)]
			b, _ := json.Marshal(sampleEvent{Seq: d.seq - k, Sample: s})
			events = append(events, b)
		}
		events = append(events, d.last)
	}
	return events, init, d.seq, d.tick
}
