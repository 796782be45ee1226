package main

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net"

	"smtpd/smtpd"
)

// newServer builds the smtpd.Server that cfg describes, handing messages to
// h. It is the one place where flags become library settings. tlsConfig
// (from loadTLS) and users (from loadPasswords) are nil when their flags
// are not given: no STARTTLS, no AUTH.
func newServer(cfg *config, log *slog.Logger, h smtpd.Handler, tlsConfig *tls.Config, users passwords) *smtpd.Server {
	p := &policy{cfg: cfg}
	srv := &smtpd.Server{
		Hostname:        cfg.hostname,
		Banner:          cfg.banner,
		Handler:         h,
		Logger:          log,
		MaxMessageBytes: cfg.maxSize,
		MaxRecipients:   cfg.maxRecipients,
		MaxConnections:  cfg.maxConns,
		CommandTimeout:  cfg.timeout,
		DataTimeout:     cfg.dataTimeout,
		MessageTimeout:  cfg.messageTimeout,
		DeliveryTimeout: cfg.deliveryTimeout,
		LMTP:            cfg.lmtp,
		TLSConfig:       tlsConfig,
		// The library offers AUTH only after TLS unless told otherwise.
		AllowInsecureAuth: cfg.authInsecure,
		RequireAuth:       cfg.authRequired,
		ProxyTrusted:      cfg.proxyTrusted,
		// In the library's terms already: see config.maxConnsPerIP.
		MaxConnectionsPerIP: cfg.maxConnsPerIP,
		GreetingDelay:       cfg.greetDelay,
		// The library checks pipelining unless told otherwise.
		DisablePipeliningSync: !cfg.pipeliningSync,
	}
	if users != nil {
		srv.Authenticate = users.authenticate
	}
	if len(cfg.denyHosts) > 0 || len(cfg.allowHosts) > 0 {
		srv.CheckConnection = p.checkConnection
	}
	if len(cfg.denySenders) > 0 {
		srv.CheckSender = p.checkSender
	}
	if len(cfg.denyRecipients) > 0 || len(cfg.acceptDomains) > 0 {
		srv.CheckRecipient = p.checkRecipient
	}
	return srv
}

// policy holds the access rules of the -deny-*, -allow-hosts and
// -accept-domains flags, as the server's Check callbacks.
type policy struct {
	cfg *config
}

// Refusals. They say what was refused, never which rule refused it, so a
// client learns no more about the configuration than it needs to.
var (
	// RFC 5321 3.1: 554 at connect, "no SMTP service here".
	replyHostDenied = &smtpd.Reply{Code: 554, Enhanced: "5.7.1", Text: "Access denied"}
	// RFC 3463 3.8: X.7.1 "delivery not authorized, message refused".
	replySenderDenied    = &smtpd.Reply{Code: 550, Enhanced: "5.7.1", Text: "Sender address rejected: access denied"}
	replyRecipientDenied = &smtpd.Reply{Code: 550, Enhanced: "5.7.1", Text: "Recipient address rejected: access denied"}
	replyRelayDenied     = &smtpd.Reply{Code: 550, Enhanced: "5.7.1", Text: "Relay access denied"}
)

// checkConnection refuses clients in -deny-hosts, and, when -allow-hosts
// is given, clients not in it (seed -validate_host). Deny wins over allow,
// so a network can be allowed with holes in it.
func (p *policy) checkConnection(ctx context.Context, remote net.Addr) error {
	ip, ok := remoteIP(remote)
	if !ok {
		return nil // not TCP: no address to judge
	}
	if p.cfg.denyHosts.contains(ip) {
		return replyHostDenied
	}
	if len(p.cfg.allowHosts) > 0 && !p.cfg.allowHosts.contains(ip) {
		return replyHostDenied
	}
	return nil
}

// checkSender refuses reverse-paths that match -deny-senders. The null
// reverse-path is matched as "<>", so that bounces can be refused on their
// own.
func (p *policy) checkSender(ctx context.Context, env *smtpd.Envelope) error {
	addr := env.ReversePath.String()
	if env.ReversePath.IsNull() {
		addr = "<>"
	}
	if p.cfg.denySenders.match(addr) {
		return replySenderDenied
	}
	return nil
}

// checkRecipient refuses forward-paths that match -deny-recipients, and,
// with -accept-domains, relaying: an unauthenticated client may only send
// to the listed domains (an open relay is what spammers look for).
func (p *policy) checkRecipient(ctx context.Context, env *smtpd.Envelope, rcpt smtpd.Recipient) error {
	if p.cfg.denyRecipients.match(rcpt.ForwardPath.String()) {
		return replyRecipientDenied
	}
	if len(p.cfg.acceptDomains) > 0 && !authenticated(env) {
		if !p.cfg.acceptDomains.match(rcpt.ForwardPath.Domain) {
			return replyRelayDenied
		}
	}
	return nil
}

// authenticated reports whether the client of env has authenticated with
// AUTH (-auth-file), which lets it send to any domain despite
// -accept-domains, as a submission server lets its users do.
func authenticated(env *smtpd.Envelope) bool {
	return env.AuthIdentity != ""
}
