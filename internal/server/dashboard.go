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
	var refused []dashboard.Count
	row := map[string]int{} // one row per name: a reason over every input
	for _, r := range s.refusalCounts(fs) {
		if i, ok := row[r.name]; ok {
			refused[i].N += r.n
			continue
		}
		row[r.name] = len(refused)
		refused = append(refused, dashboard.Count{Name: r.name, N: r.n})
	}
	refused = append(refused, webhookLosses(s.webhook)...)
	return dashboard.Counters{
		Connections: fs.Conns, Streams: fs.Streams, Topics: st.Topics, Subscribers: st.Subscribers,
		Published: st.Published, Delivered: fs.Delivered, Lagged: fs.Lagged + fs.Stalled,
		HistoryEvents: st.HistoryEvents, HistoryBytes: st.HistoryBytes,
		Refused: refused,
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
