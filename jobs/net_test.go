package jobs

import "net"

// netListener finds a port nothing listens on (to simulate an SMTP server that is down).
type netListener struct {
	l    net.Listener
	port int
}

func (n *netListener) listen() (*netListener, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	return &netListener{l: l, port: l.Addr().(*net.TCPAddr).Port}, nil
}

func (n *netListener) close() { n.l.Close() }
