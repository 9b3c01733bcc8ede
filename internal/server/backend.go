package server

import (
	"context"
	"encoding/json"
	"strconv"

	"github.com/hasses-go/hasses/internal/control"
	"github.com/hasses-go/hasses/internal/hub"
)

// The Server is the control channel's backend.
var _ control.Backend = (*Server)(nil)

// Counters returns hasses' counters over every front end.
func (s *Server) Counters() control.Counters {
	st := s.front.Stats()
	return control.Counters{AllConn: st.Conns, SSEConn: st.Streams, MaxConn: st.MaxConns, MsgSend: st.Delivered}
}

// Presence lists who is subscribed to tokens: on every node of a cluster,
// else on this one.
func (s *Server) Presence(ctx context.Context, tokens []string) ([]hub.TokenPresence, error) {
	if s.cluster != nil {
		return s.cluster.Presence(ctx, tokens)
	}
	return s.hub.Presence(tokens), nil
}

// SubscribedClients counts the streams subscribed to exactly token.
func (s *Server) SubscribedClients(token string) int { return s.hub.SubscribedClients(token) }

// Clients lists the SSE connections.
func (s *Server) Clients() []control.ClientInfo {
	var out []control.ClientInfo
	for _, c := range s.front.Clients() {
		out = append(out, control.ClientInfo(c))
	}
	return out
}

// ClusterStatus answers tcpcluster: this node's view of the cluster.
func (s *Server) ClusterStatus() []byte {
	if s.cluster == nil {
		return []byte(`{"cluster": null}`)
	}
	st := s.cluster.Stats()
	view := s.cluster.View()
	total := 0
	for _, n := range view {
		total += n.Streams
	}
	b, _ := json.Marshal(map[string]any{"cluster": map[string]any{
		"prefix": s.opts.ClusterPrefix, "node": s.cluster.NodeID(), "ready": st.Ready,
		"epoch": strconv.FormatUint(st.Epoch, 36), "seq": st.Seq, "queued": st.Queued,
		"streams": total, "nodes": view,
	}})
	return b
}

// SetReinit turns hasses' reinit on or off.
func (s *Server) SetReinit(on bool) { s.reinit.Store(on) }

// Info describes the server for the status commands.
func (s *Server) Info() control.Info {
	mode := "unencrypted (http)"
	if s.opts.SSL {
		mode = "SSL encrypted (https)"
	}
	return control.Info{Version: Version, Mode: mode, Started: s.started, Reinit: s.reinit.Load(), CORSBase: s.opts.CORSBase}
}
