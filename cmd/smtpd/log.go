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
	drop := dropDefault
	if verbose {
		drop = dropVerbose
	}
	return slog.New(&quietHandler{h, drop})
}

// quietHandler drops the library's records that would repeat what the
// program logs (see newLogger). Should the library rename them, they merely
// show up again.
type quietHandler struct {
	slog.Handler
	drop map[string]slog.Level
}

var (
	// By default: the library's per-session and per-message lines, which
	// the program's lines replace.
	dropDefault = map[string]slog.Level{
		"session started": slog.LevelInfo,
		"message":         slog.LevelInfo,
	}
	// With -v: the library's line per command, which names only the verb;
	// -v (verboseTracer, trace.go) logs the whole line and the replies.
	dropVerbose = map[string]slog.Level{
		"command": slog.LevelDebug,
	}
)

func (h *quietHandler) Handle(ctx context.Context, r slog.Record) error {
	if level, ok := h.drop[r.Message]; ok && r.Level == level {
		return nil
	}
	return h.Handler.Handle(ctx, r)
}

func (h *quietHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &quietHandler{h.Handler.WithAttrs(attrs), h.drop}
}

func (h *quietHandler) WithGroup(name string) slog.Handler {
	return &quietHandler{h.Handler.WithGroup(name), h.drop}
}
