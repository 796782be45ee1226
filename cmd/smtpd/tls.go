package main

import (
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"smtpd/internal/selfsigned"
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
		cert, err = selfSigned(cfg.hostname)
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
// same machine can connect by name or by address; valid for a year.
func selfSigned(hostname string) (tls.Certificate, error) {
	names := []string{"127.0.0.1", "::1"}
	// An address literal ("[192.0.2.1]", "[IPv6:::1]") names an IP,
	// anything else a DNS name (RFC 5280 4.2.1.6).
	if ip := net.ParseIP(strings.TrimPrefix(strings.Trim(hostname, "[]"), "IPv6:")); ip != nil && strings.HasPrefix(hostname, "[") {
		names = append(names, ip.String())
	} else {
		names = append(names, hostname)
	}
	return selfsigned.New(hostname, names, 365*24*time.Hour)
}
