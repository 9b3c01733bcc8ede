package control

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"sync"
	"time"
)

// ServeTCP serves the control port until ctx is done: a goroutine per
// control connection (there are few), each held open until the client
// closes it or half-closes after its last message.
func (h *Handler) ServeTCP(ctx context.Context, ln net.Listener) error {
	var wg sync.WaitGroup
	var mu sync.Mutex
	conns := map[net.Conn]struct{}{}
	stop := context.AfterFunc(ctx, func() {
		ln.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	defer stop()
	defer wg.Wait()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			if errors.Is(err, os.ErrDeadlineExceeded) {
				continue
			}
			h.Logger.Error("control: accept failed", "err", err)
			time.Sleep(100 * time.Millisecond) // out of fds: do not spin
			continue
		}
		if h.Policy != nil && !h.Policy.PermitsConn(c.RemoteAddr()) {
			h.Logger.Warn("control: connection refused: address not allowed", "remote", c.RemoteAddr().String())
			c.Close()
			continue
		}
		mu.Lock()
		conns[c] = struct{}{}
		mu.Unlock()
		wg.Go(func() {
			h.serveConn(ctx, c)
			mu.Lock()
			delete(conns, c)
			mu.Unlock()
			c.Close()
		})
	}
}

// serveConn reads units from one control connection. The replies to one
// read are written back with one write, as hasses did.
func (h *Handler) serveConn(ctx context.Context, c net.Conn) {
	source := c.RemoteAddr().String()
	f := h.newFramer(source)
	buf := make([]byte, 16<<10)
	var reply []byte
	authed := h.Policy == nil || h.Policy.Secret == ""
	refused := false
	handle := func(unit []byte) {
		if refused {
			return
		}
		if !authed {
			// The first unit must be "auth <secret>"; nothing else is read
			// before it.
			secret, ok := bytes.CutPrefix(unit, []byte("auth "))
			if ok && h.Policy.CheckSecret(string(secret)) {
				authed = true
				reply = append(reply, `{"auth": "ok"}`+"\n"...)
				return
			}
			h.Logger.Warn("control: authentication failed", "remote", source)
			reply = append(reply, `{"error": "authentication required: send auth <secret> first"}`+"\n"...)
			refused = true
			return
		}
		reply = h.Handle(reply, unit, true, source)
	}
	for ctx.Err() == nil {
		if f.Pending() {
			c.SetReadDeadline(time.Now().Add(h.idleGap()))
		} else {
			c.SetReadDeadline(time.Time{})
		}
		n, err := c.Read(buf)
		reply = reply[:0]
		if n > 0 {
			f.Feed(buf[:n], handle)
			if f.PendingCommand() {
				f.Flush(handle)
			}
		}
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				f.Flush(handle) // the idle gap ended a fragment
			} else {
				f.Flush(handle) // end of file ends the last unit
				if len(reply) > 0 {
					c.Write(reply)
				}
				return
			}
		}
		if len(reply) > 0 {
			if _, err := c.Write(reply); err != nil {
				return
			}
		}
		if refused {
			return
		}
	}
}
