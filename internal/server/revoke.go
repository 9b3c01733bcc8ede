package server

import (
	"context"
	"time"

	"github.com/hasses-go/hasses/internal/hub"
	"github.com/hasses-go/hasses/internal/subauth"
)

// Revoke records a revocation of subscriber tokens: in this node's list at
// once, and in a cluster also in Redis, where a restarted node finds it
// (the log brings it to the nodes running).
func (s *Server) Revoke(ctx context.Context, r subauth.Revocation) error {
	if s.cluster != nil {
		if err := s.cluster.SaveRevocation(ctx, r.User, hub.Revocation{At: r.At.UnixMilli(), Until: r.Until.UnixMilli()}); err != nil {
			return err
		}
	}
	s.revoked.Add(r, time.Now())
	return nil
}

// Revocations lists the revocations in force.
func (s *Server) Revocations(now time.Time) []subauth.Revocation { return s.revoked.Active(now) }

// applyRevocation is the cluster's OnRevoke.
func (s *Server) applyRevocation(user string, r hub.Revocation) {
	s.revoked.Add(subauth.Revocation{User: user, At: time.UnixMilli(r.At), Until: time.UnixMilli(r.Until)}, time.Now())
}
