package smtpd_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/mail"
	"net/smtp"
	"net/textproto"
	"strings"

	"smtpd/smtpd"
)

// A mail sink on a free loopback port, fed by net/smtp.
func Example() {
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	received := make(chan string, 1)
	srv := &smtpd.Server{
		Hostname: "mx.example.org",
		Handler: smtpd.HandlerFunc(func(ctx context.Context, env *smtpd.Envelope, msg io.Reader) error {
			body, err := io.ReadAll(msg)
			if err != nil {
				return err
			}
			received <- fmt.Sprintf("from %s to %s, %d lines", env.ReversePath, env.Recipients[0].ForwardPath,
				strings.Count(string(body), "\r\n"))
			return nil // the client gets 250 only now
		}),
	}
	go srv.Serve(l)
	defer srv.Close()

	err := smtp.SendMail(l.Addr().String(), nil, "alice@example.org", []string{"bob@example.org"},
		[]byte("Subject: hello\r\n\r\nHi Bob.\r\n"))
	fmt.Println(err, <-received)
	// Output: <nil> from alice@example.org to bob@example.org, 7 lines
}

// The seed's -validate_sender and -validate_recipient, and -deliverMIME as
// MessageHandler, which keeps the envelope.
func ExampleMessageHandler() {
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	subjects := make(chan string, 1)
	srv := &smtpd.Server{
		CheckSender: func(ctx context.Context, env *smtpd.Envelope) error {
			if env.ReversePath.LocalPart == "denied" {
				return &smtpd.Reply{Code: 550, Enhanced: "5.7.1", Text: "Sender denied"}
			}
			return nil
		},
		CheckRecipient: func(ctx context.Context, env *smtpd.Envelope, rcpt smtpd.Recipient) error {
			if !strings.EqualFold(rcpt.ForwardPath.Domain, "example.org") {
				return &smtpd.Reply{Code: 550, Enhanced: "5.7.1", Text: "Relaying denied"}
			}
			return nil
		},
		Handler: smtpd.MessageHandler(func(ctx context.Context, env *smtpd.Envelope, msg *mail.Message) error {
			subjects <- msg.Header.Get("Subject")
			return nil
		}),
	}
	go srv.Serve(l)
	defer srv.Close()

	addr := l.Addr().String()
	fmt.Println(replyOf(smtp.SendMail(addr, nil, "denied@example.org", []string{"bob@example.org"}, []byte("\r\n"))))
	fmt.Println(replyOf(smtp.SendMail(addr, nil, "alice@example.org", []string{"bob@elsewhere.example"}, []byte("\r\n"))))
	fmt.Println(smtp.SendMail(addr, nil, "alice@example.org", []string{"bob@example.org"},
		[]byte("Subject: parsed\r\n\r\nHi.\r\n")), <-subjects)
	// Output:
	// 550 5.7.1 Sender denied
	// 550 5.7.1 Relaying denied
	// <nil> parsed
}

// replyOf formats the SMTP reply net/smtp got.
func replyOf(err error) string {
	var tpErr *textproto.Error
	if errors.As(err, &tpErr) {
		return fmt.Sprintf("%d %s", tpErr.Code, tpErr.Msg)
	}
	return fmt.Sprint(err)
}
