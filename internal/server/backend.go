package server

import (
	"github.com/hasses-go/hasses/internal/control"
	"github.com/hasses-go/hasses/internal/hub"
)

// The Server is the control channel's backend.
var _ control.Backend = (*Server)(nil)

// Publish routes a message through the hub.
func (s *Server) Publish(m hub.Message) (hub.Result, error) { return s.hub.Publish(m) }

// Counters returns hasses' counters over every front end.
func (s *Server) Counters() control.Counters {
	st := s.front.Stats()
	return control.Counters{AllConn: st.Conns, SSEConn: st.Streams, MaxConn: st.MaxConns, MsgSend: st.Delivered}
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
