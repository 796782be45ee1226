// Package conformance is the SMTP conformance suite: the transcripts in
// testdata/, one behaviour each, and what it takes to replay them against
// the in-process server (go test ./conformance/...) or against any server
// on the network (cmd/smtpconform).
//
// The transcript format is defined in testdata/README.md and implemented
// by smtpd/internal/transcript. This package adds what the suite knows
// about servers: how a transcript's header configures an [smtpd.Server]
// (NewServer), which cases a remote server can be held to (Skip), and the
// transcripts themselves, embedded so that smtpconform carries them.
package conformance
