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
// Its API follows tcllib's smtpd (Tcl), the server it grew from: a
// configuration of a banner and callbacks that validate the client, the
// sender and each recipient and then deliver the message. Here they are
// the fields of [Server] and a [Handler]: CheckConnection for
// -validate_host, CheckSender for -validate_sender, CheckRecipient for
// -validate_recipient, Handler for -deliver and [MessageHandler] for
// -deliverMIME. Unlike tcllib's callbacks, these get the envelope and a
// context, return a [Reply] to choose the code, and stream the message.
//
// # Where each rule lives
//
// One file per topic; a reader checking this package against the RFCs
// finds each rule here, cited by section where it is applied:
//
//	RFC 5321 2.3.8 (only CRLF ends a line)  lines.go (command lines), datareader.go (message data)
//	RFC 5321 3.1, 4.3.1 (greeting)          greeting.go; limits.go (421 to a connection over the limits)
//	RFC 5321 3.3, 4.1.4 (command order)     state.go, the one table every command is looked up in
//	RFC 5321 3.8 (421, closing)             shutdown.go (Shutdown, Close)
//	RFC 5321 4.1.1 (command syntax)         conn.go (step, dispatch, splitCommand), lines.go (readLine)
//	RFC 5321 4.1.1.1 HELO, EHLO             hello.go
//	RFC 5321 4.1.1.2, 4.1.1.3 MAIL, RCPT    mail.go; their parameters in params.go
//	RFC 5321 4.1.1.4 DATA, 4.5.2 dot lines  data.go (the command); datareader.go (the data)
//	RFC 5321 4.1.1.5 to 4.1.1.10, 3.5, 7.3  commands.go: RSET, VRFY, EXPN, HELP, NOOP, QUIT
//	RFC 5321 4.1.2, 4.1.3 (paths)           path.go
//	RFC 5321 4.2 (replies)                  reply.go; STATE-TABLE.md lists every reply sent
//	RFC 5321 4.2.5 (250 after delivery)     deliver.go, handler.go
//	RFC 5321 4.4 (Received)                 received.go
//	RFC 5321 4.5.3.1 (size limits)          server.go (the fields), lines.go, path.go, datareader.go
//	RFC 5321 4.5.3.2 (timeouts)             server.go (the fields), lines.go (deadlines)
//	RFC 1870 SIZE                           params.go (the parameter), datareader.go (552 past it)
//	RFC 2033 LMTP                           hello.go (LHLO), deliver.go (a reply per recipient), handler.go
//	RFC 2034, RFC 3463 (enhanced codes)     reply.go
//	RFC 2920 PIPELINING                     state.go (a verb's place in a group), conn.go (unsynchronized), lines.go (replies written when the reader waits)
//	RFC 3030 CHUNKING, BINARYMIME           chunk.go; BODY=BINARYMIME in params.go, DATA after it in state.go (guards)
//	RFC 3207 STARTTLS                       tls.go; 503 under TLS and 530 before it (RequireTLS) in state.go (guards)
//	RFC 3461 DSN parameters                 params.go, with xtext
//	RFC 3848 (Received "with")              received.go (protocol)
//	RFC 4954 AUTH, RFC 4616 PLAIN           auth.go; the AUTH= parameter in params.go; 503, 538 and 530 in state.go (guards)
//	RFC 6152 8BITMIME                       params.go
//	RFC 6531 SMTPUTF8                       path.go (UTF-8 addresses), params.go, received.go (UTF8SMTP)
//	RFC 8314 implicit TLS                   listen.go (ServeTLS, ListenAndServeTLS), tls.go (handshake)
//	PROXY protocol v1, v2                   proxy.go; the header's parser in internal/proxyproto
//	Following a session (Server.Trace)      trace.go
//
// # Reading it
//
// For someone learning SMTP, LEARN.md in this directory walks through one
// whole session, reply by reply, with the state after each and the
// conformance transcripts that show each rule. For someone auditing the
// package, the order that follows a session: server.go (the fields and
// their defaults), listen.go and limits.go (a connection arrives),
// conn.go (the session: serve, step, dispatch), greeting.go, lines.go
// and reply.go (reading lines, writing replies), state.go (the table),
// then each command's file: hello.go, mail.go with path.go and params.go,
// data.go with datareader.go, chunk.go, deliver.go and received.go,
// commands.go, tls.go, auth.go; last shutdown.go and trace.go.
//
// A message in BDAT chunks (RFC 3030) is read without a goroutine of its
// own. The first chunk's command calls the Handler, whose reads drain the
// chunk; at the chunk's end the reader answers 250 and runs the same
// command loop as the session (step), until the next BDAT announces more
// octets for the Handler, or BDAT LAST ends the message, or a command
// ends the transaction (RSET, HELO, EHLO, QUIT) and the Handler reads an
// error:
//
//	session: step -> dispatch -> bdat (first chunk) -> deliver -> Handler
//	Handler: Read -> chunk octets ... end of chunk -> 250
//	         -> step -> dispatch -> bdat (next chunk: announce only) -> back to Read
//	         ... BDAT LAST chunk read -> io.EOF -> Handler returns -> 250 for the message
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
// to, and the guards that refuse an allowed command all the same (STARTTLS
// under TLS, AUTH after AUTH). One function consults it; a command out of
// sequence gets 503, or the reply of the guard that holds.
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
