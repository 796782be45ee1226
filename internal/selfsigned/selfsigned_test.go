package selfsigned

import (
	"crypto/tls"
	"crypto/x509"
	"testing"
	"time"
)

// TestNew: a client that trusts the certificate verifies it for each name,
// and not for another; the PEM form loads back.
func TestNew(t *testing.T) {
	cert, err := New("test", []string{"mx.test", "127.0.0.1", "::1"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"mx.test", "127.0.0.1", "::1"} {
		if _, err := cert.Leaf.Verify(x509.VerifyOptions{DNSName: name, Roots: Pool(cert)}); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := cert.Leaf.Verify(x509.VerifyOptions{DNSName: "other.test", Roots: Pool(cert)}); err == nil {
		t.Error("verified for a name it does not hold")
	}
	certPEM, keyPEM, err := PEM(cert)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tls.X509KeyPair(certPEM, keyPEM); err != nil {
		t.Fatal(err)
	}
}
