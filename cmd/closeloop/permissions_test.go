package main

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	natsconf "github.com/closeloop/closeloop/deploy/nats"
	"github.com/closeloop/closeloop/libs/checkpoint"
	"github.com/closeloop/closeloop/libs/eventlog"
	"github.com/closeloop/closeloop/libs/eventlog/jsstore"
	"github.com/closeloop/closeloop/libs/natsembed"
	"github.com/closeloop/closeloop/libs/pii"
	"github.com/closeloop/closeloop/libs/platform"
	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
)

// These tests run the bus of `make run` (startBus: the deployed accounts
// and permissions of deploy/nats/accounts.conf) and attack it as each
// identity.

// openLogAs opens the event log as NATS user over an in-process
// connection (a test reading the log as an operator does).
func openLogAs(tb testing.TB, ctx context.Context, ns *closedBus, user string) (jetstream.JetStream, eventlog.Store) {
	tb.Helper()
	nc, err := ns.connect(user, "test-"+user, true, nil)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		tb.Fatal(err)
	}
	cfg, err := platform.StoreConfigFromEnv()
	if err != nil {
		tb.Fatal(err)
	}
	store, err := jsstore.New(ctx, js, cfg)
	if err != nil {
		tb.Fatalf("open the log as %s: %v", user, err)
	}
	tb.Cleanup(func() { _ = store.Close() })
	return js, store
}

// identity is a connection as one NATS user that keeps the permission
// violations the server reports (asynchronously: a refused request just
// gets no answer).
type identity struct {
	user string
	nc   *nats.Conn
	js   jetstream.JetStream
	mu   sync.Mutex
	seen []string
}

func connectAs(t *testing.T, ns *closedBus, user string) *identity {
	t.Helper()
	id := &identity{user: user}
	nc, err := ns.Connect("test-"+user, false, nats.UserInfo(user, ns.passwords[user]),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			id.mu.Lock()
			defer id.mu.Unlock()
			id.seen = append(id.seen, err.Error())
		}))
	if err != nil {
		t.Fatalf("connect as %s: %v", user, err)
	}
	t.Cleanup(nc.Close)
	id.nc = nc
	if id.js, err = jetstream.New(nc); err != nil {
		t.Fatal(err)
	}
	return id
}

// refused runs op and checks that the server refused to let this user
// publish on subject, and that op failed. A refused request gets no answer:
// op is cancelled once the refusal is in.
func (id *identity) refused(t *testing.T, what, subject string, op func(ctx context.Context) error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- op(ctx) }()
	want := strings.ToLower(`permissions violation for publish to "` + subject)
	seen := func() bool {
		id.mu.Lock()
		defer id.mu.Unlock()
		return slices.ContainsFunc(id.seen, func(s string) bool { return strings.Contains(strings.ToLower(s), want) })
	}
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !seen() {
		select {
		case err := <-done:
			if err == nil {
				t.Errorf("%s may %s", id.user, what)
			} else if !seen() {
				t.Errorf("%s: %s failed with %v, but the server reported no refusal of %s (saw %q)", id.user, what, err, subject, id.seen)
			}
			return
		case <-tick.C:
		}
	}
	cancel()
	if err := <-done; err == nil {
		t.Errorf("%s may %s", id.user, what)
	}
}

func newBus(t *testing.T) (*closedBus, string) {
	t.Helper()
	dir := t.TempDir()
	ns, err := startBus(t.Context(), dir, natsembed.Options{StoreDir: filepath.Join(dir, "nats"), NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Shutdown)
	return ns, dir
}

func complaintEvent(t *testing.T, id, producer string, payload proto.Message) *eventsv1.Envelope {
	t.Helper()
	e, err := eventlog.NewEvent(eventlog.Meta{ComplaintID: id, Producer: producer, Actor: "system", OccurredAt: time.Now()}, payload)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// The bus takes no one without credentials, nor with a wrong password.
func TestBusRefusesAnonymousClients(t *testing.T) {
	ns, _ := newBus(t)
	for name, opts := range map[string][]nats.Option{
		"no credentials": nil,
		"wrong password": {nats.UserInfo("intake", "guess")},
		"unknown user":   {nats.UserInfo("root", "root")},
	} {
		nc, err := nats.Connect(ns.ClientURL(), opts...)
		if err == nil {
			nc.Close()
			t.Errorf("%s: connected", name)
		} else if !errors.Is(err, nats.ErrAuthorization) && !strings.Contains(strings.ToLower(err.Error()), "authorization") {
			t.Errorf("%s: refused with %v, want an authorization violation", name, err)
		}
	}
}

// The passwords are generated once into the data directory, readable by
// its owner only, and reused on the next start.
func TestBusCredentialsLiveInTheDataDirectory(t *testing.T) {
	ns, dir := newBus(t)
	for _, v := range natsconf.PasswordVars() {
		path := filepath.Join(secretsDir(dir), v)
		st, err := os.Stat(path)
		if err != nil {
			t.Fatalf("%s: %v", v, err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, want 0600", path, st.Mode().Perm())
		}
	}
	if st, err := os.Stat(secretsDir(dir)); err != nil || st.Mode().Perm()&fs.ModePerm != 0o700 {
		t.Errorf("secrets directory: %v, %v, want mode 0700", st.Mode().Perm(), err)
	}
	first := maps.Clone(ns.passwords)
	if len(first) != len(natsconf.PasswordVars()) || first["ops"] == "" || first["ops"] == first["admin"] {
		t.Fatalf("passwords %d, want one distinct per identity", len(first))
	}
	ns.Shutdown()
	again, err := startBus(t.Context(), dir, natsembed.Options{StoreDir: filepath.Join(dir, "nats"), NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(again.Shutdown)
	for u, pw := range first {
		if again.passwords[u] != pw {
			t.Errorf("%s: a restart changed the password", u)
		}
	}
}

// A service works with its own identity: it opens the log, appends to a
// stream of a kind it writes, saves a snapshot twice (the second replaces
// the first, which purges its chunks) and loads it.
func TestAServiceWorksWithItsOwnIdentity(t *testing.T) {
	ns, _ := newBus(t)
	ctx := t.Context()
	js, store := openLogAs(t, ctx, ns, "followup")
	id := "0190c0de-0000-7000-8000-00000000000f"
	if _, err := store.Append(ctx, eventlog.ComplaintStream(id), 0, complaintEvent(t, id, "followup", &eventsv1.SurveySent{})); err != nil {
		t.Fatalf("append a complaint event: %v", err)
	}
	if _, err := store.ReadStream(ctx, eventlog.ComplaintStream(id), 1); err != nil {
		t.Fatalf("read it: %v", err)
	}
	snaps, err := checkpoint.NewJetStream(ctx, js, 1)
	if err != nil {
		t.Fatalf("open the snapshot store: %v", err)
	}
	for pos := range uint64(2) {
		if err := snaps.Save(ctx, "followup-kpi", checkpoint.Snapshot{Format: 1, Position: pos + 1, Hash: make([]byte, 32), Data: make([]byte, 200_000)}); err != nil {
			t.Fatalf("save snapshot %d: %v", pos+1, err)
		}
	}
	snap, err := snaps.Load(ctx, "followup-kpi")
	if err != nil || snap.Position != 2 {
		t.Fatalf("load the snapshot: %+v, %v", snap.Position, err)
	}
	obj, err := js.Stream(ctx, "OBJ_SNAPSHOTS")
	if err != nil {
		t.Fatal(err)
	}
	// One object's chunks and its metadata: the first save's chunks were purged.
	if st := obj.CachedInfo().State; st.Msgs > 3 {
		t.Errorf("snapshot bucket holds %d messages after replacing an object: the old chunks were not purged", st.Msgs)
	}
}

// A service writes only the streams of its own kinds: dispatch cannot
// append a routing event to a team stream. (Within a kind both write, the
// subject cannot tell event types apart: see deploy/nats/accounts.conf.)
func TestDispatchCannotWriteRoutingEvents(t *testing.T) {
	ns, _ := newBus(t)
	d := connectAs(t, ns, "dispatch")
	store, err := jsstore.New(t.Context(), d.js, jsstore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	team := eventlog.Stream("team", "north")
	joined := complaintEvent(t, "", "routing", &eventsv1.TeamMemberJoined{Team: "north", MemberId: "m-forged", OnShift: true})
	d.refused(t, "append TeamMemberJoined to a team stream", jsstore.Subject(team), func(ctx context.Context) error {
		_, err := store.Append(ctx, team, 0, joined)
		return err
	})
	d.refused(t, "publish on a team stream's subject", jsstore.Subject(team), func(ctx context.Context) error {
		_, err := d.js.Publish(ctx, jsstore.Subject(team), []byte("x"))
		return err
	})
}

// Nobody may delete EVENTS or DEADLETTER, purge them or remove a message;
// no service and no operator may change their configuration (lower the
// log's retention); the system user may not wipe the account.
func TestNobodyMayDeleteOrShrinkTheLog(t *testing.T) {
	ns, _ := newBus(t)
	ctx := t.Context()
	_, log := openLogAs(t, ctx, ns, "intake")
	id := "0190c0de-0000-7000-8000-0000000000aa"
	if _, err := log.Append(ctx, eventlog.ComplaintStream(id), 0, complaintEvent(t, id, "intake", &eventsv1.SurveySent{})); err != nil {
		t.Fatal(err)
	}
	before, err := connectAs(t, ns, "ops").js.Stream(ctx, jsstore.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	// The attacks are the JetStream API requests themselves, so that a
	// refused look-up before them cannot pass for a refusal.
	shorter := before.CachedInfo().Config
	shorter.MaxAge = time.Hour
	lower, err := json.Marshal(shorter)
	if err != nil {
		t.Fatal(err)
	}
	attacks := []struct {
		what, subject string
		body          []byte
		adminMay      bool
	}{
		{"delete EVENTS", "$JS.API.STREAM.DELETE.EVENTS", nil, false},
		{"delete DEADLETTER", "$JS.API.STREAM.DELETE.DEADLETTER", nil, false},
		{"purge EVENTS", "$JS.API.STREAM.PURGE.EVENTS", nil, false},
		{"purge DEADLETTER", "$JS.API.STREAM.PURGE.DEADLETTER", nil, false},
		{"delete a message of EVENTS", "$JS.API.STREAM.MSG.DELETE.EVENTS", []byte(`{"seq":1}`), false},
		{"delete ANCHORS", "$JS.API.STREAM.DELETE.ANCHORS", nil, false},
		{"purge ANCHORS", "$JS.API.STREAM.PURGE.ANCHORS", nil, false},
		// Setting the streams up is admin's job: it may change them.
		{"lower the log's retention", "$JS.API.STREAM.UPDATE.EVENTS", lower, true},
	}
	var users []string
	for u := range ns.passwords {
		if u != "sys" {
			users = append(users, u)
		}
	}
	slices.Sort(users)
	// Every identity at once; then the log is checked.
	t.Run("attacks", func(t *testing.T) {
		t.Run("sys", func(t *testing.T) {
			t.Parallel()
			s := connectAs(t, ns, "sys")
			s.refused(t, "purge the CLOSELOOP account", "$JS.API.ACCOUNT.PURGE.CLOSELOOP", func(ctx context.Context) error {
				_, err := s.nc.RequestWithContext(ctx, "$JS.API.ACCOUNT.PURGE.CLOSELOOP", nil)
				return err
			})
		})
		for _, u := range users {
			t.Run(u, func(t *testing.T) {
				t.Parallel()
				id := connectAs(t, ns, u)
				for _, a := range attacks {
					if u == "admin" && a.adminMay {
						continue
					}
					id.refused(t, a.what, a.subject, func(ctx context.Context) error {
						_, err := id.nc.RequestWithContext(ctx, a.subject, a.body)
						return err
					})
				}
			})
		}
	})
	// The log is whole and keeps its retention.
	s, err := connectAs(t, ns, "ops").js.Stream(ctx, jsstore.StreamName)
	if err != nil {
		t.Fatalf("EVENTS after the attacks: %v", err)
	}
	if info, want := s.CachedInfo(), before.CachedInfo().Config.MaxAge; info.State.Msgs != 1 || info.Config.MaxAge != want {
		t.Errorf("EVENTS after the attacks: %d messages, max age %s; want 1 and %s", info.State.Msgs, info.Config.MaxAge, want)
	}
}

// intakeWroteAComplaint has intake, under its own identity, append one
// event of complaint id and seal a customer's personal data: what the
// read-only identities are then tried on.
func intakeWroteAComplaint(t *testing.T, ns *closedBus, id string) eventlog.StreamID {
	t.Helper()
	ctx := t.Context()
	intakeJS, intakeLog := openLogAs(t, ctx, ns, "intake")
	stream := eventlog.ComplaintStream(id)
	if _, err := intakeLog.Append(ctx, stream, 0, complaintEvent(t, id, "intake", &eventsv1.SurveySent{})); err != nil {
		t.Fatal(err)
	}
	keys, err := pii.New(ctx, intakeJS, pii.Config{KEKs: testKEKs(t)})
	if err != nil {
		t.Fatalf("intake opens the PII keys: %v", err)
	}
	if _, err := keys.Seal(ctx, "customer-1", &eventsv1.PersonalData{Name: "Li Lei"}); err != nil {
		t.Fatal(err)
	}
	return stream
}

// The operators' identity (closeloopctl) reads and verifies the log but
// may not append, replay a dead letter, read the PII keys, nor disturb the
// services' durable consumers.
func TestOperatorIdentityIsReadOnly(t *testing.T) {
	ns, _ := newBus(t)
	ctx := t.Context()
	stream := intakeWroteAComplaint(t, ns, "0190c0de-0000-7000-8000-0000000000bb")

	ops := connectAs(t, ns, "ops")
	log, err := jsstore.New(ctx, ops.js, jsstore.Config{})
	if err != nil {
		t.Fatalf("ops opens the log: %v", err)
	}
	t.Cleanup(func() { _ = log.Close() })
	if broken, n, err := eventlog.VerifyStream(ctx, log, stream); err != nil || n != 1 || broken != nil {
		t.Fatalf("ops verifies a complaint: %d events, broken %v, %v", n, broken, err)
	}
	if rep, err := eventlog.VerifyLog(ctx, log, 0); err != nil || rep.Events != 1 {
		t.Fatalf("ops verifies the log: %+v, %v", rep, err)
	}
	ops.refused(t, "append to a complaint", jsstore.Subject(stream), func(ctx context.Context) error {
		_, err := log.Append(ctx, stream, 1, complaintEvent(t, stream.ID(), "intake", &eventsv1.SurveySent{}))
		return err
	})
	ops.refused(t, "replay a dead letter", "deadletter.routing.replay", func(ctx context.Context) error {
		_, err := ops.js.Publish(ctx, "deadletter.routing.replay", []byte("x"))
		return err
	})
	ops.refused(t, "read the PII keys", "$JS.API.DIRECT.GET.KV_"+pii.Bucket, func(ctx context.Context) error {
		kv, err := ops.js.KeyValue(ctx, pii.Bucket)
		if err != nil {
			return err
		}
		_, err = kv.Get(ctx, "customer-1")
		return err
	})
	for _, subject := range []string{"$JS.API.CONSUMER.DELETE.EVENTS.routing", "$JS.API.CONSUMER.CREATE.EVENTS.dispatch", "$JS.API.CONSUMER.PAUSE.EVENTS.followup"} {
		ops.refused(t, "change a service's durable consumer", subject, func(ctx context.Context) error {
			_, err := ops.nc.RequestWithContext(ctx, subject, []byte("{}"))
			return err
		})
	}
	routing := connectAs(t, ns, "routing")
	routing.refused(t, "read the PII keys", "$JS.API.DIRECT.GET.KV_"+pii.Bucket, func(ctx context.Context) error {
		kv, err := routing.js.KeyValue(ctx, pii.Bucket)
		if err != nil {
			return err
		}
		_, err = kv.Get(ctx, "customer-1")
		return err
	})
}

func testKEKs(t testing.TB) *pii.Keyring {
	t.Helper()
	r, err := pii.ParseKeyring(strings.Repeat("5a", 32))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// Only intake may destroy a PII key (its EraseCustomer is the one way to
// erase), and it may do so securely under its own identity; dispatch seals
// under the keys intake made without being able to write one.
func TestOnlyIntakeMayDestroyAPIIKey(t *testing.T) {
	ns, _ := newBus(t)
	ctx := t.Context()
	intakeWroteAComplaint(t, ns, "0190c0de-0000-7000-8000-0000000000c1")

	dispatchJS, _ := openLogAs(t, ctx, ns, "dispatch")
	dkeys, err := pii.New(ctx, dispatchJS, pii.Config{KEKs: testKEKs(t), ReadOnly: true})
	if err != nil {
		t.Fatalf("dispatch opens the PII keys: %v", err)
	}
	if _, err := dkeys.Seal(ctx, "customer-1", &eventsv1.PersonalData{Name: "signer"}); err != nil {
		t.Fatalf("dispatch seals under intake's key: %v", err)
	}
	if _, err := dkeys.Seal(ctx, "customer-2", &eventsv1.PersonalData{Name: "x"}); !errors.Is(err, pii.ErrErased) {
		t.Fatalf("dispatch seals for a customer without a key: %v, want ErrErased", err)
	}

	var users []string
	for u := range ns.passwords {
		if u != "sys" && u != "intake" {
			users = append(users, u)
		}
	}
	slices.Sort(users)
	for _, u := range users {
		t.Run(u, func(t *testing.T) {
			id := connectAs(t, ns, u)
			subj := "$KV." + pii.Bucket + ".customer-1"
			id.refused(t, "purge a PII key", subj, func(ctx context.Context) error {
				_, err := id.js.PublishMsg(ctx, &nats.Msg{Subject: subj, Header: nats.Header{"KV-Operation": []string{"PURGE"}, "Nats-Rollup": []string{"sub"}}})
				return err
			})
			del := "$JS.API.STREAM.MSG.DELETE.KV_" + pii.Bucket
			id.refused(t, "delete a PII key's message", del, func(ctx context.Context) error {
				_, err := id.nc.RequestWithContext(ctx, del, []byte(`{"seq":1}`))
				return err
			})
		})
	}

	intakeJS, _ := openLogAs(t, ctx, ns, "intake")
	ikeys, err := pii.New(ctx, intakeJS, pii.Config{KEKs: testKEKs(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := ikeys.Erase(ctx, "customer-1"); err != nil {
		t.Fatalf("intake erases under its own identity: %v", err)
	}
	if _, err := dkeys.Seal(ctx, "customer-1", &eventsv1.PersonalData{Name: "signer"}); !errors.Is(err, pii.ErrErased) {
		t.Fatalf("dispatch seals after the erasure: %v, want ErrErased", err)
	}
}

// An adapter may submit to intake and do nothing else.
func TestAdapterMaySubmitOnly(t *testing.T) {
	ns, _ := newBus(t)
	a := connectAs(t, ns, "adapter")
	subject := jsstore.Subject(eventlog.ComplaintStream("0190c0de-0000-7000-8000-0000000000cc"))
	a.refused(t, "publish on a complaint stream", subject, func(ctx context.Context) error {
		_, err := a.js.Publish(ctx, subject, []byte("x"))
		return err
	})
	a.mu.Lock()
	a.seen = nil
	a.mu.Unlock()
	if err := a.nc.Publish("closeloop.intake.submit", []byte("{}")); err != nil {
		t.Fatal(err)
	}
	if err := a.nc.FlushTimeout(time.Second); err != nil {
		t.Fatal(err)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.seen) > 0 {
		t.Errorf("submitting was refused: %q", a.seen)
	}
}

// The console's identity reads the log, as its view does, and keeps its
// view's snapshot; it may not append an event (agents' actions go through
// routing's API), nor read the PII keys, nor touch a service's durable
// consumer.
func TestConsoleReadsTheLogAndWritesNoEvent(t *testing.T) {
	ns, _ := newBus(t)
	ctx := t.Context()
	stream := intakeWroteAComplaint(t, ns, "0190c0de-0000-7000-8000-0000000000dd")

	c := connectAs(t, ns, "console")
	log, err := jsstore.New(ctx, c.js, jsstore.Config{})
	if err != nil {
		t.Fatalf("console opens the log: %v", err)
	}
	t.Cleanup(func() { _ = log.Close() })
	if recs, err := log.ReadStream(ctx, stream, 1); err != nil || len(recs) != 1 {
		t.Fatalf("console reads a complaint: %d events, %v", len(recs), err)
	}
	var followed int
	fctx, stop := context.WithCancel(ctx)
	defer stop()
	err = log.Follow(fctx, 1, func(eventlog.Record) error {
		followed++
		stop()
		return nil
	})
	if followed != 1 || (err != nil && !errors.Is(err, context.Canceled)) {
		t.Fatalf("console follows the log: %d events, %v", followed, err)
	}
	snaps, err := checkpoint.NewJetStream(ctx, c.js, 1)
	if err != nil {
		t.Fatalf("console opens the snapshot store: %v", err)
	}
	for pos := range uint64(2) {
		if err := snaps.Save(ctx, "console-queue", checkpoint.Snapshot{Format: 1, Position: pos + 1, Hash: make([]byte, 32), Data: make([]byte, 200_000)}); err != nil {
			t.Fatalf("console saves snapshot %d: %v", pos+1, err)
		}
	}
	if snap, err := snaps.Load(ctx, "console-queue"); err != nil || snap.Position != 2 {
		t.Fatalf("console loads its snapshot: %+v, %v", snap.Position, err)
	}

	c.refused(t, "append to a complaint", jsstore.Subject(stream), func(ctx context.Context) error {
		_, err := log.Append(ctx, stream, 1, complaintEvent(t, stream.ID(), "routing", &eventsv1.SurveySent{}))
		return err
	})
	team := eventlog.Stream("team", "north")
	c.refused(t, "publish on a team stream", jsstore.Subject(team), func(ctx context.Context) error {
		_, err := c.js.Publish(ctx, jsstore.Subject(team), []byte("x"))
		return err
	})
	c.refused(t, "read the PII keys", "$JS.API.DIRECT.GET.KV_"+pii.Bucket, func(ctx context.Context) error {
		kv, err := c.js.KeyValue(ctx, pii.Bucket)
		if err != nil {
			return err
		}
		_, err = kv.Get(ctx, "customer-1")
		return err
	})
	c.refused(t, "write a KV bucket", "$KV.INTAKE_SECRETS.x", func(ctx context.Context) error {
		_, err := c.js.Publish(ctx, "$KV.INTAKE_SECRETS.x", []byte("x"))
		return err
	})
	for _, subject := range []string{"$JS.API.CONSUMER.DELETE.EVENTS.routing", "$JS.API.CONSUMER.CREATE.EVENTS.dispatch"} {
		c.refused(t, "change a service's durable consumer", subject, func(ctx context.Context) error {
			_, err := c.nc.RequestWithContext(ctx, subject, []byte("{}"))
			return err
		})
	}
	if recs, err := log.ReadStream(ctx, stream, 1); err != nil || len(recs) != 1 {
		t.Errorf("after the console's attempts the complaint has %d events (%v), want 1", len(recs), err)
	}
}
