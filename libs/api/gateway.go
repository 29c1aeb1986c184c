package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"go.opentelemetry.io/otel/propagation"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/closeloop/closeloop/libs/telemetry"
)

// HTTPHandler is the HTTP face:
//
//	POST /v1/<service full name>/<Method>  protojson request -> protojson response
//	GET  /healthz                          200 while the process runs
//	GET  /readyz                           200 while serving and Options.Health passes, 503 otherwise (with its reason)
//	GET  /metrics                          Options.Metrics, if set
//
// Request and response use protojson's defaults: lowerCamelCase field
// names (proto names are accepted too), unset fields omitted, enums by name.
// A POST's bearer token is checked before its body is read, and the body is
// bounded by Options.MaxBodyBytes.
func (s *Server) HTTPHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if !s.serving.Load() {
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "not serving"})
			return
		}
		if s.opts.Health != nil {
			if err := s.opts.Health(r.Context()); err != nil {
				writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "not serving", "reason": err.Error()})
				return
			}
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "serving"})
	})
	if s.opts.Metrics != nil {
		mux.Handle("GET /metrics", s.opts.Metrics)
	}
	mux.HandleFunc("POST /v1/{service}/{method}", s.invoke)
	return mux
}

// ErrorBody is the JSON body of every HTTP error.
type ErrorBody struct {
	Code       string      `json:"code"`
	Message    string      `json:"message"`
	Violations []Violation `json:"violations,omitempty"`
}

var jsonOut = protojson.MarshalOptions{}

func (s *Server) invoke(w http.ResponseWriter, r *http.Request) {
	service, method := r.PathValue("service"), r.PathValue("method")
	in, out, err := s.messagesFor(service, method)
	if err != nil {
		writeError(w, err)
		return
	}
	// Authenticate before reading the body: an unknown caller must not make
	// the server read (up to MaxBodyBytes of) anything.
	if err := s.authenticateHTTP(r, service, method); err != nil {
		writeError(w, err)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.opts.MaxBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, InvalidArgument("request body too large", Violation{Field: "body", Rule: "max_size", Message: fmt.Sprintf("at most %d bytes", tooBig.Limit)}))
			return
		}
		writeError(w, status.Error(codes.InvalidArgument, "cannot read request body"))
		return
	}
	if len(strings.TrimSpace(string(body))) > 0 {
		if err := protojson.Unmarshal(body, in); err != nil {
			writeError(w, InvalidArgument("request body is not valid JSON for "+string(in.ProtoReflect().Descriptor().FullName()),
				Violation{Field: "body", Rule: "protojson", Message: bodyProblem(err)}))
			return
		}
	}

	// The call goes through the gRPC server, so the same interceptors
	// (tracing, auth, logging) apply; authorization and trace context
	// travel as gRPC metadata.
	md := metadata.MD{}
	if a := r.Header.Get("Authorization"); a != "" {
		md.Set("authorization", a)
	}
	ctx := telemetry.Propagator.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
	telemetry.Propagator.Inject(ctx, metadataCarrier(md))
	ctx = metadata.NewOutgoingContext(ctx, md)
	if err := s.conn.Invoke(ctx, "/"+service+"/"+method, in, out); err != nil {
		writeError(w, err)
		return
	}
	data, err := jsonOut.Marshal(out)
	if err != nil {
		writeError(w, status.Error(codes.Internal, "encode response"))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(data)
}

// authenticateHTTP checks the request's bearer token with the same
// interceptor the gRPC call passes, so the refusal (and the methods open to
// everyone) are the same on both faces.
func (s *Server) authenticateHTTP(r *http.Request, service, method string) error {
	md := metadata.MD{}
	if a := r.Header.Get("Authorization"); a != "" {
		md.Set("authorization", a)
	}
	ctx := metadata.NewIncomingContext(r.Context(), md)
	_, err := s.httpAuth(ctx, nil, &grpc.UnaryServerInfo{FullMethod: "/" + service + "/" + method},
		func(context.Context, any) (any, error) { return nil, nil })
	return err
}

// bodyProblem explains a protojson error without echoing the body's
// values (they may be personal data): only unknown field names are named.
func bodyProblem(err error) string {
	msg := err.Error()
	if i := strings.Index(msg, "unknown field"); i >= 0 {
		return msg[i:]
	}
	return "malformed JSON or a value of the wrong type"
}

// messagesFor returns empty request and response messages of a unary
// method registered on this server.
func (s *Server) messagesFor(service, method string) (proto.Message, proto.Message, error) {
	info, ok := s.grpc.GetServiceInfo()[service]
	found := false
	for _, m := range info.Methods {
		if m.Name == method {
			if m.IsClientStream || m.IsServerStream {
				return nil, nil, status.Errorf(codes.Unimplemented, "%s/%s is a streaming method: use gRPC", service, method)
			}
			found = true
		}
	}
	if !ok || !found {
		return nil, nil, status.Errorf(codes.NotFound, "no method %s/%s", service, method)
	}
	d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(service))
	if err != nil {
		return nil, nil, status.Errorf(codes.Unimplemented, "%s: no descriptor registered", service)
	}
	sd, ok := d.(protoreflect.ServiceDescriptor)
	if !ok {
		return nil, nil, status.Errorf(codes.NotFound, "%s is not a service", service)
	}
	md := sd.Methods().ByName(protoreflect.Name(method))
	if md == nil {
		return nil, nil, status.Errorf(codes.NotFound, "no method %s/%s", service, method)
	}
	return newMessage(md.Input()), newMessage(md.Output()), nil
}

func newMessage(d protoreflect.MessageDescriptor) proto.Message {
	if mt, err := protoregistry.GlobalTypes.FindMessageByName(d.FullName()); err == nil {
		return mt.New().Interface()
	}
	return dynamicpb.NewMessage(d)
}

// HTTPStatus maps a gRPC code to the HTTP status the JSON face answers.
func HTTPStatus(c codes.Code) int {
	switch c {
	case codes.OK:
		return http.StatusOK
	case codes.InvalidArgument, codes.OutOfRange:
		return http.StatusBadRequest
	case codes.Unauthenticated:
		return http.StatusUnauthorized
	case codes.PermissionDenied:
		return http.StatusForbidden
	case codes.NotFound:
		return http.StatusNotFound
	case codes.AlreadyExists, codes.Aborted, codes.FailedPrecondition:
		return http.StatusConflict
	case codes.ResourceExhausted:
		return http.StatusTooManyRequests
	case codes.Unavailable:
		return http.StatusServiceUnavailable
	case codes.DeadlineExceeded:
		return http.StatusGatewayTimeout
	case codes.Unimplemented:
		return http.StatusNotImplemented
	case codes.Canceled:
		return 499 // client closed request
	}
	return http.StatusInternalServerError
}

func writeError(w http.ResponseWriter, err error) {
	st := status.Convert(err)
	if d, ok := RetryAfter(err); ok {
		w.Header().Set("Retry-After", strconv.FormatInt(retryAfterSeconds(d), 10))
	}
	writeJSON(w, HTTPStatus(st.Code()), ErrorBody{Code: st.Code().String(), Message: st.Message(), Violations: Violations(err)})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
