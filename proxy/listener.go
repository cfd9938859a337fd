package proxy

import (
	"net"
	"net/netip"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// LimitListener bounds the concurrent connections per client network (an
// IPv4 /24 or IPv6 /56). A connection over the bound is closed at once,
// before any TLS work. Peers in trusted are exempt: behind an Ingress every
// connection comes from the proxy. perNetwork <= 0 returns ln unchanged.
func LimitListener(ln net.Listener, perNetwork int, trusted []string, reg prometheus.Registerer) (net.Listener, error) {
	if perNetwork <= 0 {
		return ln, nil
	}
	ip, err := newClientIP(trusted)
	if err != nil {
		return nil, err
	}
	l := &limitListener{Listener: ln, max: perNetwork, ip: ip, open: map[string]int{},
		refused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "promgate_connections_refused_total",
			Help: "Connections closed at accept because their client network had limits.max_connections_per_network open.",
		})}
	reg.MustRegister(l.refused)
	return l, nil
}

type limitListener struct {
	net.Listener
	max     int
	ip      *clientIP
	refused prometheus.Counter

	mu   sync.Mutex
	open map[string]int
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		key, ok := l.key(c.RemoteAddr())
		if !ok {
			return c, nil
		}
		l.mu.Lock()
		if l.open[key] >= l.max {
			l.mu.Unlock()
			l.refused.Inc()
			c.Close() //nolint:errcheck // a refused connection: dropped at once, nothing was read or written
			continue
		}
		l.open[key]++
		l.mu.Unlock()
		return &countedConn{Conn: c, release: func() { l.release(key) }}, nil
	}
}

func (l *limitListener) key(a net.Addr) (string, bool) {
	ta, ok := a.(*net.TCPAddr)
	if !ok {
		return "", false
	}
	addr, ok := netip.AddrFromSlice(ta.IP)
	if !ok || l.ip.isTrusted(addr) {
		return "", false
	}
	return clientNetwork(addr.Unmap().String()), true
}

func (l *limitListener) release(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.open[key]--; l.open[key] <= 0 {
		delete(l.open, key)
	}
}

// countedConn releases its slot once, on the first Close.
type countedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *countedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
