// Package smtpd is an SMTP server: it receives mail and hands each message,
// with its envelope, to a Handler. It is written with the standard library
// alone, to be read in full by whoever vendors it.
//
// It implements:
//
//	RFC 5321  Simple Mail Transfer Protocol (with its errata)
//	RFC 1870  SMTP Service Extension for Message Size Declaration (SIZE)
//	RFC 2033  Local Mail Transfer Protocol (LMTP)
//	RFC 2034  SMTP Service Extension for Returning Enhanced Error Codes
//	RFC 2920  SMTP Service Extension for Command Pipelining
//	RFC 3030  SMTP Service Extensions for Transmission of Large and Binary MIME Messages (CHUNKING, BINARYMIME)
//	RFC 3207  SMTP Service Extension for Secure SMTP over Transport Layer Security (STARTTLS)
//	RFC 3461  SMTP Service Extension for Delivery Status Notifications (DSN): its parameters
//	RFC 3463  Enhanced Mail System Status Codes
//	RFC 3848  ESMTP and LMTP Transmission Types Registration (Received "with")
//	RFC 4616  The PLAIN Simple Authentication and Security Layer (SASL) Mechanism
//	RFC 4954  SMTP Service Extension for Authentication (AUTH)
//	RFC 6152  SMTP Service Extension for 8-bit MIME Transport (8BITMIME)
//	RFC 6531  SMTP Extension for Internationalized Email (SMTPUTF8)
//	RFC 8314  Cleartext Considered Obsolete: Use of TLS for Email Submission and Access (implicit TLS)
//	HAProxy   The PROXY protocol, versions 1 and 2
//
// # Serving
//
// A [Server]'s zero value is a mail sink that accepts and discards
// everything. Its fields set the greeting, the callbacks of the protocol's
// decision points, the limits and the timeouts; each field's documentation
// gives its default. The lifecycle is net/http's: [Server.ListenAndServe] or
// [Server.Serve] run until [Server.Shutdown] or [Server.Close] and then
// return [ErrServerClosed].
//
//	srv := &smtpd.Server{
//		Hostname: "mx.example.org",
//		Handler: smtpd.HandlerFunc(func(ctx context.Context, env *smtpd.Envelope, msg io.Reader) error {
//			return store(env, msg) // 250 only once this returned nil
//		}),
//	}
//	log.Fatal(srv.ListenAndServe())
//
// # The protocol as data
//
// The session's state machine (RFC 5321 3.3 and 4.1.4) is a table in
// state.go: which command is allowed in which state, and the state it leads
// to. One function consults it; a command out of sequence gets 503.
// STATE-TABLE.md in this directory is generated from the table.
//
// # What the server refuses
//
// Only CRLF ends a line (RFC 5321 2.3.8): a bare CR or LF never ends a
// command line or the message data, and by default a message holding one is
// refused after its end, which closes the door to SMTP smuggling. Lines,
// paths, recipients and messages have the limits of RFC 5321 4.5.3; a client
// that breaks one gets a reply and the session stays in step.
//
// A client may send commands without waiting for their replies only where
// RFC 2920 3.1 allows it, after EHLO; one that sends more behind a command
// whose reply it must wait for (EHLO, DATA, NOOP, STARTTLS, ...; the
// generated document lists each verb's place) gets 554 and the connection
// is closed, which stops transaction stuffing (see
// [Server.DisablePipeliningSync]). [Server.GreetingDelay] does the same to a
// client that talks before the greeting. A first line that is an HTTP
// request, or that does not start with a letter, gets one reply and the
// end of the session.
//
// Errors returned by callbacks become replies: a *[Reply] is sent as it is;
// any other error is logged and answered "451 4.3.0", so internal detail
// never reaches the client.
package smtpd
