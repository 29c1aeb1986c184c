package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/closeloop/closeloop/libs/eventlog"
	"github.com/closeloop/closeloop/libs/eventlog/anchor"
)

// anchorLog anchors the log's head (libs/eventlog/anchor) where no runner
// does it, on a cluster: once, or every --every until interrupted. Only
// admin may write anchors. It refuses a log that lost anchored events.
func anchorLog(ctx context.Context, c *conn, o options, args []string, out io.Writer) error {
	fs := newFlagSet("anchor")
	once := fs.Bool("once", false, "anchor once and exit (from cron), instead of every --every")
	every := fs.Duration("every", anchor.DefaultInterval, "how often to anchor the log while running")
	replicas := fs.Int("replicas", 1, "replicas of the ANCHORS stream when creating it (3 on a cluster)")
	if err := fs.Parse(args); err != nil || fs.NArg() != 0 || *every <= 0 {
		return usageErr("anchor takes --once, --every D (a positive duration) and --replicas N")
	}
	hr, ok := c.store.(eventlog.HeadReader)
	if !ok {
		return fmt.Errorf("anchor: this event log cannot tell its head")
	}
	if err := anchor.EnsureStream(ctx, c.js, *replicas); err != nil {
		return err
	}
	w := &anchor.Writer{Log: hr, Stores: anchorStores(o, c.js), Interval: *every,
		Logger: slog.New(slog.NewTextHandler(out, nil))}
	if !*once {
		fmt.Fprintf(out, "anchoring the event log every %s until interrupted\n", *every)
		return w.Run(ctx)
	}
	if err := w.Write(ctx); err != nil {
		return &exitError{exitBroken, err}
	}
	a, _, err := w.Stores[0].Latest(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "anchored: %d messages up to log position %d, sha256 %s, at %s\n", a.Messages, a.Position, a.SHA256, a.At.Format(time.RFC3339))
	return nil
}
