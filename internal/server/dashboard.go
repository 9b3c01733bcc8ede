package server

import (
	"github.com/hasses-go/hasses/internal/dashboard"
	"github.com/hasses-go/hasses/internal/hub"
)

// dashSource is the server as the dashboard reads it: the same counters as
// /metrics.
type dashSource struct{ s *Server }

func (d dashSource) DashboardCounters() dashboard.Counters {
	s := d.s
	fs := s.front.Stats()
	st := s.hub.Stats()
	p := s.pub
	return dashboard.Counters{
		Connections: fs.Conns, Streams: fs.Streams, Topics: st.Topics, Subscribers: st.Subscribers,
		Published: st.Published, Delivered: fs.Delivered, Lagged: fs.Lagged + fs.Stalled,
		HistoryEvents: st.HistoryEvents, HistoryBytes: st.HistoryBytes,
		Refused: []dashboard.Count{
			{Name: "stream: server full (503)", N: fs.Refused},
			{Name: "stream: per-address cap (429)", N: fs.RefusedPerAddr},
			{Name: "stream: token refused", N: fs.Unauthorized},
			{Name: "publish: wrong secret", N: p.Unauthorized.Load()},
			{Name: "publish: network not allowed", N: p.Forbidden.Load()},
			{Name: "publish: too large", N: p.TooLarge.Load()},
			{Name: "publish: rate limited", N: p.RateLimited.Load()},
			{Name: "publish: bad request", N: p.BadRequest.Load()},
			{Name: "admin: refused", N: s.guard.refused.Load()},
		},
	}
}

func (d dashSource) TopTokens(n int) (bySubs, byEvents []dashboard.Token) {
	a, b := d.s.hub.TopTokens(n)
	conv := func(in []hub.TokenCount) []dashboard.Token {
		out := make([]dashboard.Token, len(in))
		for i, t := range in {
			out[i] = dashboard.Token{Token: t.Token, Subscribers: t.Subscribers, Events: t.Events}
		}
		return out
	}
	return conv(a), conv(b)
}
