// Package fakekurrent is an in-process stand-in for a KurrentDB node's
// gRPC streams API (append, stream and $all reads, catch-up subscriptions to
// $all), so that the KurrentDB event log and relay run through the real
// client in tests on machines where no KurrentDB can be installed.
//
// It is a stand-in, not KurrentDB: it follows the server's documented
// behaviour where this module relies on it (optimistic concurrency by
// expected revision, atomic multi-event appends, reads of a missing stream
// answered with StreamNotFound, $all ordered by (commit, prepare), a
// subscription starting after its position) and is deliberately strict
// where the real server is: a read of $all may only start at a record's
// exact position. Where the real server's behaviour is not known to this
// module it assumes something plausible (all events of one append share the
// commit position of the last one). The live conformance run
// (EVENTSTORE_URL) is what checks the real thing.
package fakekurrent

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	kurrent "github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"github.com/EventStore/EventStore-Client-Go/v4/protos/shared"
	api "github.com/EventStore/EventStore-Client-Go/v4/protos/streams"
	"github.com/google/uuid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

type record struct {
	stream          string
	revision        uint64
	commit, prepare uint64
	id              uuid.UUID
	metadata        map[string]string
	custom, data    []byte
}

// Server is a running stand-in.
type Server struct {
	api.UnimplementedStreamsServer

	grpc *grpc.Server
	addr string

	mu      sync.Mutex
	log     []record
	streams map[string][]int // stream -> indexes into log, by revision
	grown   chan struct{}
	next    uint64 // next prepare position
	subs    int    // open subscriptions
}

// Start serves on a free loopback port. The log begins with a few system
// records and another application's stream, as a real database's does.
func Start() (*Server, error) { return StartOn("127.0.0.1:0") }

// StartOn serves on addr (host:port), e.g. to come back where a stopped
// server was; the new server's log is a fresh one.
func StartOn(addr string) (*Server, error) {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("fakekurrent: listen: %w", err)
	}
	s := &Server{grpc: grpc.NewServer(), addr: lis.Addr().String(), streams: map[string][]int{}, grown: make(chan struct{}), next: 0}
	api.RegisterStreamsServer(s.grpc, s)
	s.appendLocked("$epoch-information", []*api.AppendReq_ProposedMessage{proposed("$epoch", nil)})
	s.appendLocked("orders-1", []*api.AppendReq_ProposedMessage{proposed("OrderPlaced", []byte(`{}`))})
	go func() { _ = s.grpc.Serve(lis) }()
	return s, nil
}

// URL is the connection string of the stand-in.
func (s *Server) URL() string { return "esdb://" + s.addr + "?tls=false" }

// Addr is the host:port the stand-in listens on.
func (s *Server) Addr() string { return s.addr }

// Stop stops serving, ending open subscriptions.
func (s *Server) Stop() { s.grpc.Stop() }

// Write appends to a stream outside the API, as another application
// might, without any expectation.
func (s *Server) Write(stream, eventType string, data []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.appendLocked(stream, []*api.AppendReq_ProposedMessage{proposed(eventType, data)})
}

func proposed(eventType string, data []byte) *api.AppendReq_ProposedMessage {
	most, least := kurrent.UUIDAsInt64(uuid.New())
	return &api.AppendReq_ProposedMessage{
		Id:       &shared.UUID{Value: &shared.UUID_Structured_{Structured: &shared.UUID_Structured{MostSignificantBits: most, LeastSignificantBits: least}}},
		Metadata: map[string]string{"type": eventType, "content-type": "application/octet-stream"},
		Data:     data,
	}
}

// appendLocked stores msgs at the end of stream: consecutive prepare
// positions, one commit position for the whole write.
func (s *Server) appendLocked(stream string, msgs []*api.AppendReq_ProposedMessage) (lastRevision uint64, commit, prepare uint64) {
	idx := s.streams[stream]
	commit = s.next + uint64(len(msgs)-1)*100
	created := strconv.FormatInt(time.Now().UnixNano()/100, 10)
	for _, m := range msgs {
		md := map[string]string{"created": created}
		for k, v := range m.GetMetadata() {
			md[k] = v
		}
		st := m.GetId().GetStructured()
		id, _ := kurrent.ParseUUIDFromInt64(st.GetMostSignificantBits(), st.GetLeastSignificantBits())
		r := record{stream: stream, revision: uint64(len(idx)), commit: commit, prepare: s.next, id: id, metadata: md, custom: m.GetCustomMetadata(), data: m.GetData()}
		s.log = append(s.log, r)
		idx = append(idx, len(s.log)-1)
		prepare = s.next
		s.next += 100
	}
	s.streams[stream] = idx
	close(s.grown)
	s.grown = make(chan struct{})
	return uint64(len(idx) - 1), commit, prepare
}

// Append implements the streams API: one write, all or nothing, checked
// against the expected revision.
func (s *Server) Append(srv api.Streams_AppendServer) error {
	first, err := srv.Recv()
	if err != nil {
		return err
	}
	opts := first.GetOptions()
	if opts == nil {
		return status.Error(codes.InvalidArgument, "first message must carry the options")
	}
	var msgs []*api.AppendReq_ProposedMessage
	for {
		req, err := srv.Recv()
		if err != nil {
			break // io.EOF: the client closed its side
		}
		msgs = append(msgs, req.GetProposedMessage())
	}
	stream := string(opts.GetStreamIdentifier().GetStreamName())

	s.mu.Lock()
	defer s.mu.Unlock()
	idx := s.streams[stream]
	wrong := &api.AppendResp_WrongExpectedVersion{}
	if len(idx) == 0 {
		wrong.CurrentRevisionOption = &api.AppendResp_WrongExpectedVersion_CurrentNoStream{CurrentNoStream: &shared.Empty{}}
	} else {
		wrong.CurrentRevisionOption = &api.AppendResp_WrongExpectedVersion_CurrentRevision{CurrentRevision: uint64(len(idx) - 1)}
	}
	ok := true
	switch e := opts.GetExpectedStreamRevision().(type) {
	case *api.AppendReq_Options_NoStream:
		ok = len(idx) == 0
		wrong.ExpectedRevisionOption = &api.AppendResp_WrongExpectedVersion_ExpectedNoStream{ExpectedNoStream: &shared.Empty{}}
	case *api.AppendReq_Options_StreamExists:
		ok = len(idx) > 0
		wrong.ExpectedRevisionOption = &api.AppendResp_WrongExpectedVersion_ExpectedStreamExists{ExpectedStreamExists: &shared.Empty{}}
	case *api.AppendReq_Options_Revision:
		ok = len(idx) > 0 && uint64(len(idx)-1) == e.Revision
		wrong.ExpectedRevisionOption = &api.AppendResp_WrongExpectedVersion_ExpectedRevision{ExpectedRevision: e.Revision}
	}
	if !ok {
		return srv.SendAndClose(&api.AppendResp{Result: &api.AppendResp_WrongExpectedVersion_{WrongExpectedVersion: wrong}})
	}
	rev, commit, prepare := s.appendLocked(stream, msgs)
	return srv.SendAndClose(&api.AppendResp{Result: &api.AppendResp_Success_{Success: &api.AppendResp_Success{
		CurrentRevisionOption: &api.AppendResp_Success_CurrentRevision{CurrentRevision: rev},
		PositionOption:        &api.AppendResp_Success_Position{Position: &api.AppendResp_Position{CommitPosition: commit, PreparePosition: prepare}},
	}}})
}

func (r record) event() *api.ReadResp {
	most, least := kurrent.UUIDAsInt64(r.id)
	return &api.ReadResp{Content: &api.ReadResp_Event{Event: &api.ReadResp_ReadEvent{
		Event: &api.ReadResp_ReadEvent_RecordedEvent{
			Id:               &shared.UUID{Value: &shared.UUID_Structured_{Structured: &shared.UUID_Structured{MostSignificantBits: most, LeastSignificantBits: least}}},
			StreamIdentifier: &shared.StreamIdentifier{StreamName: []byte(r.stream)},
			StreamRevision:   r.revision,
			PreparePosition:  r.prepare,
			CommitPosition:   r.commit,
			Metadata:         r.metadata,
			CustomMetadata:   r.custom,
			Data:             r.data,
		},
		Position: &api.ReadResp_ReadEvent_CommitPosition{CommitPosition: r.commit},
	}}}
}

func (r record) before(commit, prepare uint64) bool {
	return r.commit < commit || (r.commit == commit && r.prepare < prepare)
}

// Read implements the streams API: reads of a stream or of $all, and
// catch-up subscriptions to $all.
func (s *Server) Read(req *api.ReadReq, srv api.Streams_ReadServer) error {
	o := req.GetOptions()
	if o.GetSubscription() != nil {
		return s.subscribe(o, srv)
	}
	backwards := o.GetReadDirection() == api.ReadReq_Options_Backwards
	s.mu.Lock()
	var out []record
	if st := o.GetStream(); st != nil {
		name := string(st.GetStreamIdentifier().GetStreamName())
		idx, ok := s.streams[name]
		if !ok {
			s.mu.Unlock()
			return srv.Send(&api.ReadResp{Content: &api.ReadResp_StreamNotFound_{StreamNotFound: &api.ReadResp_StreamNotFound{StreamIdentifier: st.GetStreamIdentifier()}}})
		}
		from := 0
		switch {
		case st.GetEnd() != nil:
			from = len(idx) - 1
		case st.GetStart() != nil:
			from = 0
			if backwards {
				from = -1
			}
		default:
			from = int(st.GetRevision())
		}
		for i := from; i >= 0 && i < len(idx) && uint64(len(out)) < o.GetCount(); {
			out = append(out, s.log[idx[i]])
			if backwards {
				i--
			} else {
				i++
			}
		}
	} else {
		if backwards {
			s.mu.Unlock()
			return status.Error(codes.Unimplemented, "fakekurrent: backward reads of $all")
		}
		start, err := s.allStartLocked(o.GetAll(), true)
		if err != nil {
			s.mu.Unlock()
			return err
		}
		for i := start; i < len(s.log) && uint64(len(out)) < o.GetCount(); i++ {
			out = append(out, s.log[i])
		}
	}
	s.mu.Unlock()
	for _, r := range out {
		if err := srv.Send(r.event()); err != nil {
			return err
		}
	}
	return nil
}

// allStartLocked is the index into the log where a read (inclusive) or a
// subscription (exclusive) of $all starts. Like KurrentDB, it refuses a
// position that is not a record's.
func (s *Server) allStartLocked(a *api.ReadReq_Options_AllOptions, inclusive bool) (int, error) {
	switch {
	case a.GetStart() != nil:
		return 0, nil
	case a.GetEnd() != nil:
		return len(s.log), nil
	}
	p := a.GetPosition()
	for i, r := range s.log {
		if r.commit == p.GetCommitPosition() && r.prepare == p.GetPreparePosition() {
			if inclusive {
				return i, nil
			}
			return i + 1, nil
		}
	}
	return 0, status.Errorf(codes.InvalidArgument, "fakekurrent: invalid position %d/%d: not a record's", p.GetCommitPosition(), p.GetPreparePosition())
}

func matches(f *api.ReadReq_Options_FilterOptions, r record) bool {
	if f == nil {
		return true
	}
	expr, subject := f.GetStreamIdentifier(), r.stream
	if expr == nil {
		expr, subject = f.GetEventType(), r.metadata["type"]
	}
	for _, p := range expr.GetPrefix() {
		if strings.HasPrefix(subject, p) {
			return true
		}
	}
	return len(expr.GetPrefix()) == 0
}

func (s *Server) subscribe(o *api.ReadReq_Options, srv api.Streams_ReadServer) error {
	if o.GetAll() == nil {
		return status.Error(codes.Unimplemented, "fakekurrent: stream subscriptions")
	}
	s.mu.Lock()
	i, err := s.allStartLocked(o.GetAll(), false)
	s.mu.Unlock()
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.subs++
	s.mu.Unlock()
	defer func() { s.mu.Lock(); s.subs--; s.mu.Unlock() }()
	if err := srv.Send(&api.ReadResp{Content: &api.ReadResp_Confirmation{Confirmation: &api.ReadResp_SubscriptionConfirmation{SubscriptionId: uuid.NewString()}}}); err != nil {
		return err
	}
	caughtUp := false
	for {
		s.mu.Lock()
		batch, grown := append([]record(nil), s.log[i:]...), s.grown
		s.mu.Unlock()
		for _, r := range batch {
			i++
			if !matches(o.GetFilter(), r) {
				continue
			}
			if err := srv.Send(r.event()); err != nil {
				return err
			}
		}
		if !caughtUp {
			caughtUp = true
			if err := srv.Send(&api.ReadResp{Content: &api.ReadResp_CaughtUp_{CaughtUp: &api.ReadResp_CaughtUp{}}}); err != nil {
				return err
			}
		}
		select {
		case <-srv.Context().Done():
			return srv.Context().Err()
		case <-grown:
		}
	}
}

// Subscriptions returns how many subscriptions are open.
func (s *Server) Subscriptions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.subs
}
