package smtpd

import (
	"net"
	"net/netip"
	"time"
)

// Connection limits: MaxConnections and MaxConnectionsPerIP, counted as
// connections are accepted and, behind a trusted proxy, once the PROXY
// header names the client; a refused connection gets 421 (RFC 5321 3.8)
// and no session.

// admit counts a new connection against MaxConnections and, when client is
// a valid address, against MaxConnectionsPerIP. It returns nil, or the
// reply that refuses the connection.
func (srv *Server) admit(client netip.Addr) *Reply {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if srv.shuttingDown() {
		return replyShuttingDown
	}
	if limit := limitOf(srv.MaxConnections, DefaultMaxConnections); limit > 0 && srv.active >= limit {
		return replyTooManyConns
	}
	if r := srv.countClient(client); r != nil {
		return r
	}
	srv.active++
	return nil
}

// admitClient counts c's client against MaxConnectionsPerIP, for a
// connection whose client was not known at accept: the one a PROXY header
// names. It returns nil, or the reply that refuses the connection.
func (srv *Server) admitClient(c *conn) *Reply {
	client, ok := addrIP(c.remote)
	if !ok {
		return nil // not TCP: no address to count by
	}
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if r := srv.countClient(client); r != nil {
		return r
	}
	c.client = client
	return nil
}

// countClient counts one more connection from client, unless client is the
// zero Addr or has MaxConnectionsPerIP already. srv.mu is held.
func (srv *Server) countClient(client netip.Addr) *Reply {
	if !client.IsValid() {
		return nil
	}
	if limit := srv.maxConnsPerIP(client); limit > 0 && srv.perIP[client] >= limit {
		return replyTooManyFromIP
	}
	if srv.perIP == nil {
		srv.perIP = make(map[netip.Addr]int)
	}
	srv.perIP[client]++
	return nil
}

// maxConnsPerIP is MaxConnectionsPerIP for client with its default
// applied; 0 means no limit.
func (srv *Server) maxConnsPerIP(client netip.Addr) int {
	if srv.MaxConnectionsPerIP == 0 && client.IsLoopback() {
		return 0 // the default spares this machine's own clients
	}
	limit := limitOf(srv.MaxConnectionsPerIP, DefaultMaxConnectionsPerIP)
	if all := limitOf(srv.MaxConnections, DefaultMaxConnections); srv.MaxConnectionsPerIP == 0 && all > 0 {
		limit = min(limit, max(all/2, 1))
	}
	return limit
}

// register adds an admitted connection's session to those Shutdown and
// Close end. It fails once they have begun.
func (srv *Server) register(c *conn) bool {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if srv.shuttingDown() {
		return false
	}
	if srv.conns == nil {
		srv.conns = make(map[*conn]struct{})
	}
	srv.conns[c] = struct{}{}
	return true
}

// release undoes admit, admitClient and register for c, whose connection
// has closed.
func (srv *Server) release(c *conn) {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	delete(srv.conns, c)
	srv.active--
	if c.client.IsValid() {
		if srv.perIP[c.client]--; srv.perIP[c.client] <= 0 {
			delete(srv.perIP, c.client)
		}
	}
}

// refuse answers a connection that will not be served with r, a 421 in the
// greeting's form (RFC 5321 3.8, 4.2.3), and closes it. It runs in the
// accept loop, and costs no goroutine: a new TCP connection's send buffer
// is empty, so the short line is written at once, whatever the client
// does. Another kind of connection (from a listener of the caller's, such
// as tls.NewListener's, whose first write waits for a handshake) is
// answered from a goroutine. On an implicit TLS listener the connection is
// closed without a word: a line in the clear would reach the client as a
// broken TLS record, and a handshake would make a refusal cost as much as
// a session.
func (srv *Server) refuse(rwc net.Conn, r *Reply, implicitTLS bool) {
	if srv.Logger != nil { // the address is formatted only to be logged
		srv.logInfo("connection refused", "remote", rwc.RemoteAddr().String(), "reason", r.Text)
	}
	if implicitTLS {
		rwc.Close()
		return
	}
	line := srv.refusalLine(r)
	if _, ok := rwc.(*net.TCPConn); ok {
		// A bound in case that ever fails to hold, for the accept loop.
		rwc.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
		rwc.Write(line)
		rwc.Close()
		return
	}
	go func() {
		defer rwc.Close()
		rwc.SetWriteDeadline(time.Now().Add(5 * time.Second))
		rwc.Write(line)
	}()
}

// refusalLine returns r in the greeting's form, formatted once for the
// refusals that may come in floods.
func (srv *Server) refusalLine(r *Reply) []byte {
	srv.refuseOnce.Do(func() {
		srv.refuseBusy = srv.greetingLine(replyTooManyConns)
		srv.refuseIP = srv.greetingLine(replyTooManyFromIP)
	})
	switch r {
	case replyTooManyConns:
		return srv.refuseBusy
	case replyTooManyFromIP:
		return srv.refuseIP
	}
	return srv.greetingLine(r)
}
