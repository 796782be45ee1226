package smtpd

import (
	"crypto/tls"
	"errors"
	"net"
	"net/netip"
	"syscall"
	"time"
)

// Listening and accepting: ListenAndServe, Serve and their implicit-TLS
// forms (RFC 8314), the accept loop and its back-off on resource errors.

// ListenAndServe listens on srv.Addr and serves connections on it. It always
// returns a non-nil error; after Shutdown or Close, ErrServerClosed.
func (srv *Server) ListenAndServe() error {
	return srv.listenAndServe(":25", nil)
}

// ListenAndServeTLS is ListenAndServe with implicit TLS (RFC 8314): every
// connection starts with a TLS handshake, before the greeting. certFile and
// keyFile name PEM files with the certificate chain and its key; when both
// are empty, TLSConfig must hold the certificate.
func (srv *Server) ListenAndServeTLS(certFile, keyFile string) error {
	config, err := srv.tlsConfigFor(certFile, keyFile)
	if err != nil {
		return err
	}
	return srv.listenAndServe(":465", config)
}

func (srv *Server) listenAndServe(defaultAddr string, config *tls.Config) error {
	if srv.shuttingDown() {
		return ErrServerClosed
	}
	l, err := net.Listen("tcp", orString(srv.Addr, defaultAddr))
	if err != nil {
		return err
	}
	return srv.serve(l, config)
}

// Serve accepts connections on l and serves each in its own goroutine.
// Serve closes l when it returns. It always returns a non-nil error; after
// Shutdown or Close, ErrServerClosed.
func (srv *Server) Serve(l net.Listener) error {
	return srv.serve(l, nil)
}

// ServeTLS is Serve with implicit TLS (RFC 8314) on every connection; see
// ListenAndServeTLS for certFile and keyFile.
func (srv *Server) ServeTLS(l net.Listener, certFile, keyFile string) error {
	config, err := srv.tlsConfigFor(certFile, keyFile)
	if err != nil {
		l.Close()
		return err
	}
	return srv.serve(l, config)
}

// tlsConfigFor returns a copy of TLSConfig with the certificate from
// certFile and keyFile added, as net/http's ServeTLS does.
func (srv *Server) tlsConfigFor(certFile, keyFile string) (*tls.Config, error) {
	config := &tls.Config{}
	if srv.TLSConfig != nil {
		config = srv.TLSConfig.Clone()
	}
	if certFile != "" || keyFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, err
		}
		config.Certificates = append(config.Certificates, cert)
	}
	if !canServeTLS(config) {
		return nil, errors.New("smtpd: TLS needs a certificate: none in TLSConfig, no certFile and keyFile")
	}
	return config, nil
}

// serve is Serve; config, when set, starts each connection with a TLS
// handshake.
func (srv *Server) serve(l net.Listener, config *tls.Config) error {
	if !srv.trackListener(&l, true) {
		l.Close()
		return ErrServerClosed
	}
	defer srv.trackListener(&l, false)
	defer l.Close()

	var backoff time.Duration // after a temporary Accept error, as net/http does
	for {
		rwc, err := l.Accept()
		if err != nil {
			if srv.shuttingDown() {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || isResourceError(err) {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				srv.logError("accept failed; retrying", "error", err, "delay", backoff)
				time.Sleep(backoff)
				continue
			}
			return err
		}
		backoff = 0
		// The limits are checked before anything is set up for a
		// session, so that a flood of connections beyond them costs
		// little more than the accept.
		client, _ := addrIP(rwc.RemoteAddr())
		if srv.proxyTrusted(client) {
			// The client is the one the PROXY header names; the
			// session counts it once it has read the header.
			client = netip.Addr{}
		}
		if r := srv.admit(client); r != nil {
			srv.refuse(rwc, r, config != nil)
			continue
		}
		if srv.WrapConn != nil {
			rwc = srv.WrapConn(rwc)
		}
		c := srv.newConn(rwc)
		c.implicitTLS = config
		if config != nil {
			c.closer = nil // nothing in the clear before the handshake
		}
		c.client = client
		if !srv.register(c) {
			// Shutdown or Close came after admit: not served.
			srv.release(c)
			rwc.Close()
			c.free()
			continue
		}
		go c.serve()
	}
}

func (srv *Server) trackListener(l *net.Listener, add bool) bool {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if !add {
		delete(srv.listeners, l)
		return true
	}
	if srv.shuttingDown() {
		return false
	}
	if srv.listeners == nil {
		srv.listeners = make(map[*net.Listener]struct{})
	}
	srv.listeners[l] = struct{}{}
	return true
}

// isResourceError reports whether an Accept error is the process running out
// of file descriptors, which passes when connections close.
func isResourceError(err error) bool {
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE)
}
