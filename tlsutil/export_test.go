package tlsutil

import (
	"crypto/tls"
)

// SetVerifyHookForTest makes f see every connection that reaches the
// connection check. Call it before the first handshake.
func (s *Server) SetVerifyHookForTest(f func(tls.ConnectionState)) { s.verifyHook = f }

// SetAllowedSANsForTest swaps in a snapshot that differs from the current one
// only by its SAN allow-list, as a configuration reload would.
func (s *Server) SetAllowedSANsForTest(sans []string) error {
	set, err := newSANSet("test", sans)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.snap.Load()
	n := &snapshot{cert: old.cert, clientCAs: old.clientCAs, caExpiry: old.caExpiry, allowed: set, sum: old.sum}
	s.finish(n)
	s.snap.Store(n)
	return nil
}
