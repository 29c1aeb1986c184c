package esdb

import (
	"testing"

	"google.golang.org/genproto/googleapis/rpc/code"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
)

// This test binary links this package (and so the KurrentDB client) with
// the googleapis protos every gRPC service links (status, code, errdetails,
// health). The client ships its own copies of google/rpc/status.proto and
// code.proto (packages protos/status and protos/code); linking either next
// to genproto panics at start-up with "proto: file "google/rpc/status.proto"
// has a name conflict over google.rpc.Status" (see the README). If a change
// ever imports them, this binary panics before any test runs.
func TestClientLinksWithTheGoogleapisProtos(t *testing.T) {
	for _, want := range []struct {
		name protoreflect.FullName
		from string
	}{
		{"google.rpc.Status", string((&status.Status{}).ProtoReflect().Descriptor().ParentFile().Path())},
		{"google.rpc.Code", string(code.Code_OK.Descriptor().ParentFile().Path())},
		{"google.rpc.BadRequest", string((&errdetails.BadRequest{}).ProtoReflect().Descriptor().ParentFile().Path())},
		{"grpc.health.v1.HealthCheckRequest", string((&grpc_health_v1.HealthCheckRequest{}).ProtoReflect().Descriptor().ParentFile().Path())},
	} {
		d, err := protoregistry.GlobalFiles.FindDescriptorByName(want.name)
		if err != nil {
			t.Errorf("%s is not registered: %v", want.name, err)
			continue
		}
		if got := d.ParentFile().Path(); got != want.from {
			t.Errorf("%s is registered from %s, want %s (the genproto copy)", want.name, got, want.from)
		}
	}
	// And the client's own protos are linked too (its streams API).
	if _, err := protoregistry.GlobalFiles.FindDescriptorByName("event_store.client.streams.Streams"); err != nil {
		t.Errorf("the KurrentDB client's streams service is not registered: %v", err)
	}
}
