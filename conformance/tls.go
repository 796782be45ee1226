package conformance

import (
	"crypto/tls"
	"sync"
	"time"

	"smtpd/internal/selfsigned"
)

// The in-process runner's TLS: one self-signed certificate for the
// default host name mx.test and 127.0.0.1, made once per process, which
// the server presents and the client trusts (and nothing else).
var (
	tlsOnce   sync.Once
	tlsServer *tls.Config
	tlsClient *tls.Config
	tlsErr    error
)

// testTLS returns fresh copies of the server's and the client's TLS
// configurations.
func testTLS() (server, client *tls.Config, err error) {
	tlsOnce.Do(func() { tlsServer, tlsClient, tlsErr = makeTLS() })
	if tlsErr != nil {
		return nil, nil, tlsErr
	}
	return tlsServer.Clone(), tlsClient.Clone(), nil
}

func makeTLS() (server, client *tls.Config, err error) {
	cert, err := selfsigned.New("mx.test", []string{"mx.test", "127.0.0.1"}, 24*time.Hour)
	if err != nil {
		return nil, nil, err
	}
	server = &tls.Config{Certificates: []tls.Certificate{cert}}
	client = &tls.Config{RootCAs: selfsigned.Pool(cert), ServerName: "mx.test"}
	return server, client, nil
}

// RunnerTLS returns the TLS configurations the in-process runner uses: the
// server's, with a self-signed certificate for mx.test and 127.0.0.1, and
// a client's that trusts that certificate alone. For tests that serve the
// library themselves and replay against it as a remote target.
func RunnerTLS() (server, client *tls.Config, err error) { return testTLS() }
