package conformance

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"sync"
	"time"
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
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "mx.test"},
		DNSNames:              []string{"mx.test"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	server = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert}}}
	client = &tls.Config{RootCAs: pool, ServerName: "mx.test"}
	return server, client, nil
}

// RunnerTLS returns the TLS configurations the in-process runner uses: the
// server's, with a self-signed certificate for mx.test and 127.0.0.1, and
// a client's that trusts that certificate alone. For tests that serve the
// library themselves and replay against it as a remote target.
func RunnerTLS() (server, client *tls.Config, err error) { return testTLS() }
