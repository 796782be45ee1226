package main

import (
	"context"
	"io"
	"log/slog"
)

// newLogger returns the logger for -log, -v and -quiet, writing to w.
//
// By default the log has one line per session and one per message: the
// library's "session ended" line, and the program's "delivery" line (see
// deliverer), which names the envelope, the size, the result and where the
// message went. The library's "session started" and "message" lines would
// double them; they are kept for -v, which also shows every command.
func newLogger(format string, verbose, quiet bool, w io.Writer) *slog.Logger {
	level := slog.LevelInfo
	switch {
	case verbose:
		level = slog.LevelDebug
	case quiet:
		level = slog.LevelWarn
	}
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler
	if format == "json" {
		h = slog.NewJSONHandler(w, opts)
	} else {
		h = slog.NewTextHandler(w, opts)
	}
	if !verbose {
		h = &quietHandler{h}
	}
	return slog.New(h)
}

// quietHandler drops the library's Info records that the default log does
// not need (see newLogger). Should the library rename them, they merely
// show up again.
type quietHandler struct{ slog.Handler }

// libraryOnlyVerbose are the library's messages shown only with -v.
var libraryOnlyVerbose = map[string]bool{
	"session started": true,
	"message":         true,
}

func (h *quietHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level == slog.LevelInfo && libraryOnlyVerbose[r.Message] {
		return nil
	}
	return h.Handler.Handle(ctx, r)
}

func (h *quietHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &quietHandler{h.Handler.WithAttrs(attrs)}
}

func (h *quietHandler) WithGroup(name string) slog.Handler {
	return &quietHandler{h.Handler.WithGroup(name)}
}
