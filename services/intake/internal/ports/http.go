package ports

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	intakev1 "github.com/closeloop/closeloop/proto/gen/closeloop/intake/v1"
)

// maxBody bounds an HTTP or NATS request body.
const maxBody = 1 << 20

// Dispatcher calls a method of the service by name with a JSON body, through
// the same interceptors as gRPC: the HTTP face and the NATS subject use it.
type Dispatcher struct {
	srv   intakev1.IntakeServiceServer
	chain grpc.UnaryServerInterceptor
}

// NewDispatcher wraps the service with the interceptors, in order.
func NewDispatcher(srv intakev1.IntakeServiceServer, interceptors ...grpc.UnaryServerInterceptor) *Dispatcher {
	return &Dispatcher{srv: srv, chain: chain(interceptors)}
}

func chain(ics []grpc.UnaryServerInterceptor) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		for i := len(ics) - 1; i >= 0; i-- {
			ic, next := ics[i], h
			h = func(ctx context.Context, req any) (any, error) { return ic(ctx, req, info, next) }
		}
		return h(ctx, req)
	}
}

// Call decodes body (protojson) as the method's request and runs it.
// authorization is the caller's "Bearer <token>".
func (d *Dispatcher) Call(ctx context.Context, method, authorization string, body []byte) (proto.Message, error) {
	for _, m := range intakev1.IntakeService_ServiceDesc.Methods {
		if m.MethodName != method {
			continue
		}
		ctx = metadata.NewIncomingContext(ctx, metadata.Pairs("authorization", authorization))
		dec := func(v any) error {
			if len(body) == 0 {
				return nil
			}
			if err := (protojson.UnmarshalOptions{}).Unmarshal(body, v.(proto.Message)); err != nil {
				// The decoder's message may quote the input: keep it out.
				return status.Error(codes.InvalidArgument, "body: not a valid JSON "+method+"Request")
			}
			return nil
		}
		out, err := m.Handler(d.srv, ctx, dec, d.chain)
		if err != nil {
			return nil, err
		}
		return out.(proto.Message), nil
	}
	return nil, status.Errorf(codes.Unimplemented, "no method %q", method)
}

// HTTPHandler serves POST /v1/intake/<Method> with a JSON body.
func HTTPHandler(d *Dispatcher) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/intake/{method}", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
		if err != nil {
			writeError(w, status.Error(codes.InvalidArgument, fmt.Sprintf("body: larger than %d bytes or unreadable", maxBody)))
			return
		}
		out, err := d.Call(r.Context(), r.PathValue("method"), r.Header.Get("Authorization"), body)
		if err != nil {
			writeError(w, err)
			return
		}
		b, err := protojson.Marshal(out)
		if err != nil {
			writeError(w, status.Error(codes.Internal, "encode response"))
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(b)
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok\n") })
	return mux
}

// ErrorBody is the JSON of an error on the HTTP face and the NATS subject.
type ErrorBody struct {
	Code              string         `json:"code"`
	Message           string         `json:"message"`
	Violations        []ViolationDTO `json:"violations,omitempty"`
	RetryAfterSeconds float64        `json:"retry_after_seconds,omitempty"`
}

// ViolationDTO is one field violation: the field, the rule and a message.
type ViolationDTO struct {
	Field   string `json:"field"`
	Rule    string `json:"rule"`
	Message string `json:"message"`
}

// ErrorJSON converts a status error to the error body.
func ErrorJSON(err error) (ErrorBody, codes.Code, time.Duration) {
	st, _ := status.FromError(err)
	b := ErrorBody{Code: strings.ToUpper(codeName(st.Code())), Message: st.Message()}
	var retry time.Duration
	for _, d := range st.Details() {
		switch d := d.(type) {
		case *errdetails.BadRequest:
			for _, v := range d.GetFieldViolations() {
				b.Violations = append(b.Violations, ViolationDTO{Field: v.GetField(), Rule: v.GetReason(), Message: v.GetDescription()})
			}
		case *errdetails.RetryInfo:
			retry = d.GetRetryDelay().AsDuration()
			b.RetryAfterSeconds = retry.Seconds()
		}
	}
	return b, st.Code(), retry
}

func codeName(c codes.Code) string {
	// codes.Code.String() is "InvalidArgument"; the HTTP body uses the
	// canonical upper snake case name.
	var out []rune
	for i, r := range c.String() {
		if i > 0 && r >= 'A' && r <= 'Z' {
			out = append(out, '_')
		}
		out = append(out, r)
	}
	return string(out)
}

func writeError(w http.ResponseWriter, err error) {
	if errors.Is(err, context.Canceled) {
		err = status.Error(codes.Canceled, "request canceled")
	}
	b, code, retry := ErrorJSON(err)
	if retry > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(retry.Seconds()+0.999)))
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(HTTPStatus(code))
	_ = json.NewEncoder(w).Encode(b)
}

// HTTPStatus maps a gRPC code to the HTTP status of the JSON face.
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
	case codes.AlreadyExists, codes.Aborted:
		return http.StatusConflict
	case codes.FailedPrecondition:
		return http.StatusPreconditionFailed
	case codes.ResourceExhausted:
		return http.StatusTooManyRequests
	case codes.Unimplemented:
		return http.StatusNotFound
	case codes.Unavailable:
		return http.StatusServiceUnavailable
	case codes.DeadlineExceeded:
		return http.StatusGatewayTimeout
	case codes.Canceled:
		return 499
	}
	return http.StatusInternalServerError
}
