package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"fmt"
	"math/big"
	"net"
	"os"
	"strings"
	"time"
)

// loadTLS returns the TLS configuration of -tls-cert and -tls-key, or of
// -tls-self-signed, or nil when neither is given (no STARTTLS). It reads
// the files now, so that a wrong path or a key that does not belong to the
// certificate stops the program before it listens, rather than failing
// each client's handshake. fingerprint is set for a self-signed
// certificate, for the log: it is the only way a client can pin it.
func loadTLS(cfg *config) (conf *tls.Config, fingerprint string, err error) {
	var cert tls.Certificate
	switch {
	case cfg.tlsCert != "":
		certPEM, err := os.ReadFile(cfg.tlsCert)
		if err != nil {
			return nil, "", fmt.Errorf("-tls-cert: %v", err)
		}
		keyPEM, err := os.ReadFile(cfg.tlsKey)
		if err != nil {
			return nil, "", fmt.Errorf("-tls-key: %v", err)
		}
		cert, err = tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			return nil, "", fmt.Errorf("-tls-cert %s and -tls-key %s: %v", cfg.tlsCert, cfg.tlsKey, err)
		}
	case cfg.tlsSelfSigned:
		cert, err = selfSigned(cfg.hostname, time.Now())
		if err != nil {
			return nil, "", fmt.Errorf("-tls-self-signed: %v", err)
		}
		sum := sha256.Sum256(cert.Certificate[0])
		fingerprint = hex.EncodeToString(sum[:])
	default:
		return nil, "", nil
	}
	// Go's defaults are sound (TLS 1.2 and up, no weak suites); only the
	// certificate is ours to give.
	return &tls.Config{Certificates: []tls.Certificate{cert}}, fingerprint, nil
}

// selfSigned makes a certificate and its ECDSA P-256 key, held in memory
// only, for hostname and the loopback addresses, so that a client on the
// same machine can connect by name or by address. It is valid from an
// hour before now (clocks differ) for a year.
func selfSigned(hostname string, now time.Time) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	// RFC 5280 4.1.2.2: a positive serial number of up to 20 octets,
	// random so that two certificates of the same name never share one.
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 159))
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: hostname, Organization: []string{"smtpd -tls-self-signed"}},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		// A certificate that is its own issuer is the client's trust
		// anchor if the client trusts it at all.
		BasicConstraintsValid: true,
	}
	// An address literal ("[192.0.2.1]") names an IP, anything else a
	// DNS name (RFC 5280 4.2.1.6).
	if strings.HasPrefix(hostname, "[") {
		if ip := net.ParseIP(strings.TrimPrefix(strings.Trim(hostname, "[]"), "IPv6:")); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		}
	} else {
		tmpl.DNSNames = []string{hostname}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}
