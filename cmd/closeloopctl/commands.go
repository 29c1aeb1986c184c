package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/closeloop/closeloop/libs/bus"
	"github.com/closeloop/closeloop/libs/eventlog"
	"github.com/closeloop/closeloop/libs/eventlog/anchor"
	"github.com/closeloop/closeloop/libs/eventlog/jsstore"
	"github.com/closeloop/closeloop/libs/eventlog/signing"
	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
)

type conn struct {
	nc    *nats.Conn
	js    jetstream.JetStream
	store eventlog.Store
}

func connect(ctx context.Context, o options) (*conn, error) {
	nc, err := connectNATS(o)
	if err != nil {
		return nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, err
	}
	// A missing EVENTS stream is a lost log when an anchor vouches for it;
	// never let jsstore.New create an empty one in its place.
	if _, err := js.Stream(ctx, jsstore.StreamName); errors.Is(err, jetstream.ErrStreamNotFound) {
		err := anchor.Check(ctx, anchor.Gone{}, anchorStores(o, js)...)
		nc.Close()
		if err != nil {
			return nil, &exitError{exitBroken, err}
		}
		return nil, fmt.Errorf("the event log (stream %s) does not exist, and no anchor vouches for one", jsstore.StreamName)
	}
	store, err := jsstore.New(ctx, js, jsstore.Config{})
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("open the event log: %w", err)
	}
	return &conn{nc: nc, js: js, store: store}, nil
}

// connectNATS connects as o.natsUser with its password from
// $NATS_PASSWORD, else from the data directory (<data>/secrets/
// NATS_<USER>_PASSWORD, written by the runner on first start). With
// neither, it connects as the URL says (it may carry user:password).
func connectNATS(o options) (*nats.Conn, error) {
	opts := []nats.Option{nats.Name("closeloopctl")}
	pw := os.Getenv("NATS_PASSWORD")
	if pw == "" {
		file := filepath.Join(o.dataDir, "secrets", "NATS_"+strings.ToUpper(o.natsUser)+"_PASSWORD")
		b, err := os.ReadFile(file)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("NATS password of %s: %w", o.natsUser, err)
		}
		pw = strings.TrimSpace(string(b))
	}
	if pw != "" {
		opts = append(opts, nats.UserInfo(o.natsUser, pw))
	}
	nc, err := nats.Connect(o.natsURL, opts...)
	if err != nil {
		// The URL may carry a password: name the flag, not its value.
		return nil, fmt.Errorf("connect to NATS (-nats) as %s: %w", o.natsUser, err)
	}
	return nc, nil
}

func (c *conn) close() {
	_ = c.store.Close()
	c.nc.Close()
}

// anchorStores are the log's anchors an operator can see: the ANCHORS
// stream, and <data>/anchor.json of `make run` when there is one.
func anchorStores(o options, js jetstream.JetStream) []anchor.Store {
	stores := []anchor.Store{anchor.JetStream{JS: js}}
	if f := filepath.Join(o.dataDir, anchor.FileName); fileExists(f) {
		stores = append(stores, anchor.File{Path: f})
	}
	return stores
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// readComplaint returns the complaint's records, every one stored, in
// order, up to the first link of its hash chain that does not hold; broken
// names that link (nil when the chain holds). No events at all is an
// exitNotFound error.
func readComplaint(ctx context.Context, c *conn, id string) (recs []eventlog.Record, broken *eventlog.BrokenLink, err error) {
	stream := eventlog.ComplaintStream(id)
	if raw, ok := c.store.(eventlog.RawStreamReader); ok {
		recs, err = raw.ReadStreamRaw(ctx, stream)
	} else {
		recs, err = c.store.ReadStream(ctx, stream, 1)
	}
	if err != nil {
		return nil, nil, err
	}
	if broken = eventlog.VerifyChain(stream, recs); broken != nil {
		recs = recs[:broken.Version-1] // the events before it held
	}
	if len(recs) == 0 && broken == nil {
		return nil, nil, &exitError{exitNotFound, fmt.Errorf("complaint %s: no events", id)}
	}
	return recs, broken, nil
}

// damaged is the exit of a command that stopped at a broken link.
func damaged(what string, b *eventlog.BrokenLink) error {
	return &exitError{exitBroken, fmt.Errorf("%s stops at a damaged link: %w; run closeloopctl verify", what, b)}
}

// historyLine is one row of a complaint's timeline.
type historyLine struct {
	Version    uint64    `json:"version"`
	Position   uint64    `json:"position"`
	OccurredAt time.Time `json:"occurred_at"`
	RecordedAt time.Time `json:"recorded_at"`
	Service    string    `json:"service"`
	Actor      string    `json:"actor"`
	Event      string    `json:"event"`
	Fields     string    `json:"fields"`
}

func history(ctx context.Context, c *conn, o options, id string, out io.Writer) error {
	recs, broken, err := readComplaint(ctx, c, id)
	if err != nil {
		return err
	}
	if err := writeHistory(recs, o, out); err != nil {
		return err
	}
	if broken != nil {
		return damaged("history", broken)
	}
	return nil
}

func writeHistory(recs []eventlog.Record, o options, out io.Writer) error {
	lines := make([]historyLine, len(recs))
	for i, r := range recs {
		e := r.Event
		lines[i] = historyLine{
			Version: e.GetVersion(), Position: r.Position,
			OccurredAt: e.GetOccurredAt().AsTime(), RecordedAt: e.GetRecordedAt().AsTime(),
			Service: e.GetProducer(), Actor: e.GetActor(), Event: e.GetType(),
			Fields: keyFields(e),
		}
	}
	if o.output == "json" {
		return json.NewEncoder(out).Encode(lines)
	}
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "VER\tOCCURRED (UTC)\tSERVICE\tACTOR\tEVENT\tKEY FIELDS")
	for _, l := range lines {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", l.Version, l.OccurredAt.Format("2006-01-02 15:04:05"), l.Service, l.Actor, l.Event, l.Fields)
	}
	return tw.Flush()
}

func asOf(ctx context.Context, c *conn, o options, id string, at time.Time, out io.Writer) error {
	recs, broken, err := readComplaint(ctx, c, id)
	if err != nil {
		return err
	}
	if broken != nil { // the state would silently lack what is missing
		return damaged("the state as of "+at.Format(time.RFC3339), broken)
	}
	s := snapshotAsOf(id, recs, at.UTC())
	if s.Version == 0 {
		return &exitError{exitNotFound, fmt.Errorf("complaint %s: nothing recorded at or before %s", id, at.Format(time.RFC3339))}
	}
	if o.output == "json" {
		return json.NewEncoder(out).Encode(s)
	}
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	row := func(k string, v any) {
		if str := fmt.Sprint(v); str != "" && str != "0" && str != "false" {
			fmt.Fprintf(tw, "%s\t%s\n", k, str)
		}
	}
	row("complaint", s.ComplaintID)
	row("as of", s.AsOf.Format(time.RFC3339))
	row("version", s.Version)
	row("status", s.Status)
	row("channel", s.Channel)
	row("first receiver", s.FirstReceiver)
	row("category", s.Category)
	row("severity", s.Severity)
	row("priority", s.Priority)
	row("repeat", s.Repeat)
	row("team", s.Team)
	row("owner", s.Owner)
	row("escalation", s.EscalationLevel)
	row("duplicates linked", s.Duplicates)
	row("reopened", s.Reopened)
	row("outcome", s.Outcome)
	for _, cl := range s.OpenClocks {
		state := "running"
		if cl.Paused {
			state = "paused"
		}
		fmt.Fprintf(tw, "clock %s\t%s, deadline %s\n", cl.Target, state, cl.Deadline.Format(time.RFC3339))
	}
	for wo, st := range s.WorkOrders {
		fmt.Fprintf(tw, "work order %s\t%s\n", wo, st)
	}
	return tw.Flush()
}

// exportLine is one event of an audit export: the envelope as protojson, the
// stored bytes' hash and the log position, so the file can be checked later.
type exportLine struct {
	Position uint64          `json:"position"`
	Hash     string          `json:"sha256"`
	Event    json.RawMessage `json:"event"`
}

func export(ctx context.Context, c *conn, id string, out io.Writer) error {
	recs, broken, err := readComplaint(ctx, c, id)
	if err != nil {
		return err
	}
	if err := writeExport(recs, out); err != nil {
		return err
	}
	if broken != nil {
		return damaged("export", broken)
	}
	return nil
}

func writeExport(recs []eventlog.Record, out io.Writer) error {
	enc := json.NewEncoder(out)
	for _, r := range recs {
		body, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(r.Event)
		if err != nil {
			return err
		}
		if err := enc.Encode(exportLine{Position: r.Position, Hash: fmt.Sprintf("%x", eventlog.Hash(r.Raw)), Event: body}); err != nil {
			return err
		}
	}
	return nil
}

type verifyResult struct {
	Scope   string                 `json:"scope"`
	Events  int                    `json:"events"`
	Streams int                    `json:"streams"`
	OK      bool                   `json:"ok"`
	Broken  []*eventlog.BrokenLink `json:"broken,omitempty"`
	// Anchor says what the log lost of what an anchor vouches for.
	Anchor string `json:"anchor,omitempty"`
	// Signed says whether signatures were checked (a keyring was found).
	Signed bool `json:"signatures_checked"`
}

func verify(ctx context.Context, c *conn, o options, target string, out io.Writer) error {
	keys, err := keyring(o)
	if err != nil {
		return err
	}
	var res verifyResult
	if target == "--all" {
		rep, err := eventlog.VerifyLog(ctx, c.store, 0, keys)
		if err != nil {
			return err
		}
		res = verifyResult{Scope: "whole log", Events: rep.Events, Streams: rep.Streams, Broken: rep.Broken}
		if hr, ok := c.store.(eventlog.HeadReader); ok {
			err := anchor.Check(ctx, hr, anchorStores(o, c.js)...)
			if !errors.Is(err, anchor.ErrLogBehind) && err != nil {
				return err
			}
			if err != nil {
				res.Anchor = err.Error()
			}
		}
	} else {
		stream := eventlog.ComplaintStream(target)
		broken, n, err := eventlog.VerifyStream(ctx, c.store, stream, keys)
		if err != nil {
			return err
		}
		if n == 0 {
			return &exitError{exitNotFound, fmt.Errorf("complaint %s: no events", target)}
		}
		res = verifyResult{Scope: string(stream), Events: n, Streams: 1}
		if broken != nil {
			res.Broken = []*eventlog.BrokenLink{broken}
		}
	}
	res.OK, res.Signed = len(res.Broken) == 0 && res.Anchor == "", keys != nil
	if o.output == "json" {
		if err := json.NewEncoder(out).Encode(res); err != nil {
			return err
		}
	} else {
		if res.OK {
			signed := "every event signed by a producer allowed to write it"
			if !res.Signed {
				signed = "signatures NOT checked (no keyring: -signers)"
			}
			fmt.Fprintf(out, "OK: %s — %d events in %d stream(s), every hash chain holds, %s\n", res.Scope, res.Events, res.Streams, signed)
		}
		if res.Anchor != "" {
			fmt.Fprintf(out, "MISSING: %s\n", res.Anchor)
		}
		for _, b := range res.Broken {
			fmt.Fprintf(out, "BROKEN: %s\n", b.Error())
		}
	}
	if res.Anchor != "" {
		return &exitError{exitBroken, fmt.Errorf("verification failed: the log lost anchored events; %d broken chain(s)", len(res.Broken))}
	}
	if !res.OK {
		return &exitError{exitBroken, fmt.Errorf("verification failed: %d broken chain(s)", len(res.Broken))}
	}
	return nil
}

// keyring reads the keyring verify checks signatures with: -signers, else
// the one `make run` keeps in the data directory, else none (nil).
func keyring(o options) (*signing.Keyring, error) {
	path := o.signers
	if path == "" {
		path = filepath.Join(o.dataDir, "secrets", "signing", "signers.json")
		if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
	}
	k, err := signing.ReadKeyring(path)
	if err != nil {
		return nil, fmt.Errorf("keyring (-signers): %w", err)
	}
	return k, nil
}

func deadLetters(ctx context.Context, c *conn, o options, args []string, out io.Writer) error {
	if len(args) == 0 {
		return usageErr("deadletters takes list, show <seq> or replay <seq>")
	}
	seqArg := func() (uint64, error) {
		if len(args) != 2 {
			return 0, usageErr("deadletters %s takes one dead-letter sequence", args[0])
		}
		seq, err := strconv.ParseUint(args[1], 10, 64)
		if err != nil || seq == 0 {
			return 0, usageErr("deadletters %s: sequence %q: must be a positive number", args[0], args[1])
		}
		return seq, nil
	}
	switch args[0] {
	case "list":
		dls, err := bus.DeadLetters(ctx, c.js, "")
		if err != nil {
			return err
		}
		if o.output == "json" {
			rows := make([]deadLetterView, len(dls))
			for i, d := range dls {
				rows[i] = viewOf(d)
			}
			return json.NewEncoder(out).Encode(rows)
		}
		tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "SEQ\tTIME (UTC)\tCONSUMER\tORIGINAL\tDELIVERIES\tREASON")
		for _, d := range dls {
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s#%d\t%d\t%s\n", d.Seq, d.Time.UTC().Format("2006-01-02 15:04:05"), d.Consumer, d.Stream, d.StreamSequence, d.Deliveries, d.Reason)
		}
		return tw.Flush()
	case "show":
		seq, err := seqArg()
		if err != nil {
			return err
		}
		d, err := bus.DeadLetterAt(ctx, c.js, seq)
		if err != nil {
			return &exitError{exitNotFound, err}
		}
		v := viewOf(d)
		var e eventsv1.Envelope
		if err := proto.Unmarshal(d.Data, &e); err == nil && eventlog.TypeOf(&e) != "" {
			v.Event, v.Fields = e.GetType(), keyFields(&e)
			v.ComplaintID, v.Version = e.GetComplaintId(), e.GetVersion()
		} else {
			v.Event = "(payload does not decode as an event)"
		}
		if o.output == "json" {
			return json.NewEncoder(out).Encode(v)
		}
		tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
		fmt.Fprintf(tw, "seq\t%d\nconsumer\t%s\nreason\t%s\noriginal\t%s seq %d (%s)\ndeliveries\t%d\ndead-lettered\t%s\nevent\t%s\ncomplaint\t%s v%d\nfields\t%s\n",
			v.Seq, v.Consumer, v.Reason, v.Stream, v.StreamSequence, v.Subject, v.Deliveries, v.Time.Format(time.RFC3339), v.Event, v.ComplaintID, v.Version, v.Fields)
		return tw.Flush()
	case "replay":
		seq, err := seqArg()
		if err != nil {
			return err
		}
		req, err := bus.Replay(ctx, c.js, seq)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "dead letter %d handed back to its consumer (replay request %d)\n", seq, req)
		return nil
	default:
		return usageErr("deadletters: unknown subcommand %q", args[0])
	}
}

type deadLetterView struct {
	Seq            uint64    `json:"seq"`
	Consumer       string    `json:"consumer"`
	Reason         string    `json:"reason"`
	Stream         string    `json:"stream"`
	Subject        string    `json:"subject"`
	StreamSequence uint64    `json:"stream_sequence"`
	Deliveries     uint64    `json:"deliveries"`
	Time           time.Time `json:"time"`
	Event          string    `json:"event,omitempty"`
	ComplaintID    string    `json:"complaint_id,omitempty"`
	Version        uint64    `json:"version,omitempty"`
	Fields         string    `json:"fields,omitempty"`
}

func viewOf(d bus.DeadLetter) deadLetterView {
	return deadLetterView{Seq: d.Seq, Consumer: d.Consumer, Reason: d.Reason, Stream: d.Stream, Subject: d.Subject,
		StreamSequence: d.StreamSequence, Deliveries: d.Deliveries, Time: d.Time.UTC()}
}
