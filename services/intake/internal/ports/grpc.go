// Package ports exposes intake's use cases: the gRPC service (served with
// its HTTP/JSON face by libs/api), the NATS request subject, which goes
// through that same face, and the per-caller rate limit interceptor.
package ports

import (
	"context"
	"errors"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/closeloop/closeloop/libs/auth"
	intakev1 "github.com/closeloop/closeloop/proto/gen/closeloop/intake/v1"
	"github.com/closeloop/closeloop/services/intake/internal/app"
)

// Server implements intakev1.IntakeServiceServer on the use cases. Their
// errors are of libs/kernel's kinds and go back as they are: libs/api's
// server maps them to gRPC and HTTP (and so NATS) codes.
type Server struct {
	intakev1.UnimplementedIntakeServiceServer
	app *app.App
}

// NewServer builds the gRPC service. It expects the libs/api server's
// authentication to have put the caller in the context.
func NewServer(a *app.App) *Server { return &Server{app: a} }

func (s *Server) caller(ctx context.Context) (auth.Principal, error) {
	p, ok := auth.FromContext(ctx)
	if !ok {
		return p, status.Error(codes.Unauthenticated, "not authenticated")
	}
	return p, nil
}

func (s *Server) SubmitComplaint(ctx context.Context, req *intakev1.SubmitComplaintRequest) (*intakev1.SubmitComplaintResponse, error) {
	p, err := s.caller(ctx)
	if err != nil {
		return nil, err
	}
	r, err := s.app.Submit(ctx, p, req)
	if err != nil {
		return nil, alreadyExists(err)
	}
	return &intakev1.SubmitComplaintResponse{ComplaintId: r.ComplaintID, Created: r.Created, Linked: r.Linked, Accepted: r.Accepted}, nil
}

func (s *Server) AcceptComplaint(ctx context.Context, req *intakev1.AcceptComplaintRequest) (*intakev1.AcceptComplaintResponse, error) {
	p, err := s.caller(ctx)
	if err != nil {
		return nil, err
	}
	st, err := s.app.Accept(ctx, p, req.GetComplaintId())
	if err != nil {
		return nil, err
	}
	return &intakev1.AcceptComplaintResponse{ComplaintId: req.GetComplaintId(), AcceptedBy: st.AcceptedBy, Automatic: st.AcceptedAuto}, nil
}

func (s *Server) AmendCustomerDetails(ctx context.Context, req *intakev1.AmendCustomerDetailsRequest) (*intakev1.AmendCustomerDetailsResponse, error) {
	p, err := s.caller(ctx)
	if err != nil {
		return nil, err
	}
	if err := s.app.AmendCustomer(ctx, p, req.GetComplaintId(), req.GetCustomer()); err != nil {
		return nil, err
	}
	return &intakev1.AmendCustomerDetailsResponse{ComplaintId: req.GetComplaintId()}, nil
}

func (s *Server) AttachEvidence(ctx context.Context, req *intakev1.AttachEvidenceRequest) (*intakev1.AttachEvidenceResponse, error) {
	p, err := s.caller(ctx)
	if err != nil {
		return nil, err
	}
	st, err := s.app.AttachEvidence(ctx, p, req.GetComplaintId(), req.GetAttachments())
	if err != nil {
		return nil, err
	}
	return &intakev1.AttachEvidenceResponse{ComplaintId: req.GetComplaintId(), AttachmentCount: int32(len(st.Attachments))}, nil
}

func (s *Server) WithdrawComplaint(ctx context.Context, req *intakev1.WithdrawComplaintRequest) (*intakev1.WithdrawComplaintResponse, error) {
	p, err := s.caller(ctx)
	if err != nil {
		return nil, err
	}
	if err := s.app.Withdraw(ctx, p, req.GetComplaintId(), req.GetReason()); err != nil {
		return nil, err
	}
	return &intakev1.WithdrawComplaintResponse{ComplaintId: req.GetComplaintId()}, nil
}

func (s *Server) GetComplaint(ctx context.Context, req *intakev1.GetComplaintRequest) (*intakev1.GetComplaintResponse, error) {
	p, err := s.caller(ctx)
	if err != nil {
		return nil, err
	}
	c, err := s.app.Get(ctx, p, req.GetComplaintId())
	if err != nil {
		return nil, err
	}
	return &intakev1.GetComplaintResponse{Complaint: c}, nil
}

func (s *Server) EraseCustomer(ctx context.Context, req *intakev1.EraseCustomerRequest) (*intakev1.EraseCustomerResponse, error) {
	p, err := s.caller(ctx)
	if err != nil {
		return nil, err
	}
	ref, err := s.app.EraseCustomer(ctx, p, req.GetComplaintId(), req.GetLegalBasis())
	if err != nil {
		return nil, err
	}
	return &intakev1.EraseCustomerResponse{CustomerRef: ref, ComplaintIds: []string{req.GetComplaintId()}}, nil
}

// alreadyExists answers a reused channel reference as AlreadyExists (HTTP
// 409) naming channel_ref: libs/kernel has no such kind yet for libs/api to
// map, and a status error passes it unchanged.
func alreadyExists(err error) error {
	var reused *app.ReusedRefError
	if !errors.As(err, &reused) {
		return err
	}
	st := status.New(codes.AlreadyExists, reused.Error())
	br := &errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: "channel_ref", Reason: "reused", Description: "names another report; resend the same report or use a new reference"}}}
	if d, derr := st.WithDetails(br); derr == nil {
		st = d
	}
	return st.Err()
}
