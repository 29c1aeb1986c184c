package domain

import (
	"fmt"
	"slices"
	"time"

	"google.golang.org/protobuf/proto"

	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
)

// Release reasons. Declined, cancelled and reconciled jobs give the day's
// slot back; completed and failed ones were worked and keep counting.
const (
	ReleaseCompleted  = "completed"
	ReleaseFailed     = "failed"
	ReleaseDeclined   = "declined"
	ReleaseCancelled  = "cancelled"
	ReleaseReconciled = "reconciled" // booked, but the assignment never happened
	ReleaseReassigned = "reassigned" // the order went to someone else
	ReleaseEscalated  = "escalated"  // remote order replaced by an on-site one
	ReleaseResolved   = "resolved"   // remote order resolved
)

// Booking is one job held by a technician.
type Booking struct {
	WorkOrderID string
	ComplaintID string
	Day         string
	// At is when the booking was made (reconciliation waits a grace period).
	At time.Time
	// Version is the booking event's on the technician's stream, so the
	// event can be read again without the stream's history before it.
	Version uint64
	// After is a log position at or before the event before the booking
	// (the technician's Position when it was booked; 0: none known): a
	// tail read from there finds the booking without scanning the stream
	// (eventlog.TailReader).
	After uint64
}

// Technician is the state folded from a technician's stream.
type Technician struct {
	ID      string
	Version uint64
	// Position is the log position of an event of the stream at or before
	// Version: Version's own once it is known (EvolveTechnician does not
	// see positions, its callers set it); 0: none known. It is where a
	// read of the events after Version may start (eventlog.TailReader),
	// so an older one is only slower, never wrong.
	Position      uint64
	DisplayName   string
	ProductLines  []string
	Services      []eventsv1.ServiceType
	ServiceCentre string
	Region        string
	Outsourced    bool
	CalendarID    string
	MaxConcurrent uint32
	MaxDaily      uint32
	Status        eventsv1.TechnicianStatus
	// Open jobs by work order id.
	Open map[string]Booking
	// Jobs counted against each day's capacity, by day then work order id;
	// days long past are dropped (see dailyHorizon).
	Daily map[string]map[string]bool
}

// dailyHorizon is how far before a booking's event time the daily counts
// are kept. A booking counts against the day its work starts, in the
// technician's time zone, never before the decision: at most a day behind
// the decision's UTC date (UTC-12). Two days cover that and any clock skew
// between instances; older days are never asked about again.
const dailyHorizon = 48 * time.Hour

// pruneDaily drops the daily counts of days before at's horizon, so a
// technician's counts (copied on every command) stay a few days long
// however many days they work. By event time, so a rebuilt view and a
// restored one keep the same days.
func (t *Technician) pruneDaily(at time.Time) {
	if at.IsZero() {
		return
	}
	cut := at.Add(-dailyHorizon).UTC().Format(time.DateOnly)
	for day := range t.Daily {
		if day < cut { // YYYY-MM-DD sorts as it reads
			delete(t.Daily, day)
		}
	}
}

// Registered reports whether the technician exists.
func (t *Technician) Registered() bool { return t != nil && t.Version > 0 }

// OpenJobs is the number of jobs the technician holds now.
func (t *Technician) OpenJobs() int { return len(t.Open) }

// JobsOn is the number of jobs counted against day.
func (t *Technician) JobsOn(day string) int { return len(t.Daily[day]) }

// Can reports whether the technician offers the service on the product line
// (an empty product line on the order matches any).
func (t *Technician) Can(service eventsv1.ServiceType, productLine string) bool {
	if !slices.Contains(t.Services, service) {
		return false
	}
	return productLine == "" || slices.Contains(t.ProductLines, productLine)
}

// Clone returns a deep copy, so a snapshot can be read while the original moves on.
func (t *Technician) Clone() *Technician {
	c := *t
	c.ProductLines = slices.Clone(t.ProductLines)
	c.Services = slices.Clone(t.Services)
	c.Open = make(map[string]Booking, len(t.Open))
	for k, v := range t.Open {
		c.Open[k] = v
	}
	c.Daily = make(map[string]map[string]bool, len(t.Daily))
	for d, m := range t.Daily {
		mm := make(map[string]bool, len(m))
		for k := range m {
			mm[k] = true
		}
		c.Daily[d] = mm
	}
	return &c
}

// EvolveTechnician applies one event of the technician's stream, which
// happened at at.
func EvolveTechnician(t *Technician, at time.Time, ev proto.Message) *Technician {
	if t == nil {
		t = &Technician{}
	}
	if t.Open == nil {
		t.Open = map[string]Booking{}
		t.Daily = map[string]map[string]bool{}
	}
	t.Version++
	switch e := ev.(type) {
	case *eventsv1.TechnicianRegistered:
		t.ID = e.GetTechnicianId()
		t.DisplayName = e.GetDisplayName()
		t.ProductLines = slices.Clone(e.GetProductLines())
		t.Services = slices.Clone(e.GetServices())
		t.ServiceCentre = e.GetServiceCentre()
		t.Region = e.GetRegion()
		t.Outsourced = e.GetOutsourced()
		t.CalendarID = e.GetCalendarId()
		t.MaxConcurrent = e.GetMaxConcurrentJobs()
		t.MaxDaily = e.GetMaxDailyJobs()
		t.Status = eventsv1.TechnicianStatus_TECHNICIAN_STATUS_ACTIVE
	case *eventsv1.TechnicianProfileUpdated:
		t.ProductLines = slices.Clone(e.GetProductLines())
		t.Services = slices.Clone(e.GetServices())
		t.ServiceCentre = e.GetServiceCentre()
		t.Region = e.GetRegion()
		t.CalendarID = e.GetCalendarId()
		t.MaxConcurrent = e.GetMaxConcurrentJobs()
		t.MaxDaily = e.GetMaxDailyJobs()
	case *eventsv1.TechnicianStatusChanged:
		t.Status = e.GetStatus()
	case *eventsv1.TechnicianJobBooked:
		b := Booking{WorkOrderID: e.GetWorkOrderId(), ComplaintID: e.GetComplaintId(), Day: e.GetDay(), At: at, Version: t.Version, After: t.Position}
		t.Open[b.WorkOrderID] = b
		if t.Daily[b.Day] == nil {
			t.Daily[b.Day] = map[string]bool{}
		}
		t.Daily[b.Day][b.WorkOrderID] = true
		t.pruneDaily(at)
	case *eventsv1.TechnicianJobReleased:
		b, ok := t.Open[e.GetWorkOrderId()]
		if !ok {
			break
		}
		delete(t.Open, b.WorkOrderID)
		switch e.GetReason() {
		case ReleaseCompleted, ReleaseFailed, ReleaseResolved, ReleaseEscalated:
		default:
			delete(t.Daily[b.Day], b.WorkOrderID)
			if len(t.Daily[b.Day]) == 0 {
				delete(t.Daily, b.Day)
			}
		}
	}
	return t
}

// TechnicianProfile is the data of RegisterTechnician and UpdateTechnician.
type TechnicianProfile struct {
	DisplayName   string // register only
	ProductLines  []string
	Services      []eventsv1.ServiceType
	ServiceCentre string
	Region        string
	Outsourced    bool // register only
	CalendarID    string
	MaxConcurrent uint32
	MaxDaily      uint32
}

func (p TechnicianProfile) validate(register bool) error {
	var vs violations
	if register && p.DisplayName == "" {
		vs.add("display_name", "required", "a technician needs a display name")
	}
	if len(p.Services) == 0 {
		vs.add("services", "required", "at least one service type")
	}
	for i, s := range p.Services {
		if _, ok := eventsv1.ServiceType_name[int32(s)]; !ok || s == eventsv1.ServiceType_SERVICE_TYPE_UNSPECIFIED {
			vs.add(fmt.Sprintf("services[%d]", i), "enum", "unknown service type")
		}
	}
	for i, pl := range p.ProductLines {
		if pl == "" {
			vs.add(fmt.Sprintf("product_lines[%d]", i), "non_empty", "product line must not be empty")
		}
	}
	if p.ServiceCentre == "" {
		vs.add("service_centre", "required", "the service centre the technician works from")
	}
	if p.Region == "" {
		vs.add("region", "required", "the region (territory) the technician covers")
	}
	if p.MaxConcurrent == 0 {
		vs.add("max_concurrent_jobs", "min:1", "must be at least 1")
	}
	if p.MaxDaily == 0 {
		vs.add("max_daily_jobs", "min:1", "must be at least 1")
	}
	if p.MaxDaily != 0 && p.MaxConcurrent > p.MaxDaily {
		vs.add("max_daily_jobs", "gte:max_concurrent_jobs", "daily jobs must be at least the concurrent jobs")
	}
	return vs.err()
}

// RegisterTechnician decides the first event of a technician's stream.
func RegisterTechnician(t *Technician, id string, p TechnicianProfile) ([]proto.Message, error) {
	if id == "" {
		return nil, (&violations{{Field: "technician_id", Rule: "required", Message: "a technician id is required"}}).err()
	}
	if err := p.validate(true); err != nil {
		return nil, err
	}
	if t.Registered() {
		return nil, fmt.Errorf("technician %s is already registered: %w", id, ErrWrongState)
	}
	return []proto.Message{&eventsv1.TechnicianRegistered{
		TechnicianId: id, DisplayName: p.DisplayName, ProductLines: p.ProductLines, Services: p.Services,
		ServiceCentre: p.ServiceCentre, Region: p.Region, Outsourced: p.Outsourced, CalendarId: p.CalendarID,
		MaxConcurrentJobs: p.MaxConcurrent, MaxDailyJobs: p.MaxDaily,
	}}, nil
}

// UpdateTechnician changes skills, territory, calendar or capacity. Lowering
// capacity below the open jobs is allowed: they are kept, no new ones come.
func UpdateTechnician(t *Technician, p TechnicianProfile) ([]proto.Message, error) {
	if err := p.validate(false); err != nil {
		return nil, err
	}
	if !t.Registered() {
		return nil, fmt.Errorf("technician: %w", ErrNotFound)
	}
	return []proto.Message{&eventsv1.TechnicianProfileUpdated{
		TechnicianId: t.ID, ProductLines: p.ProductLines, Services: p.Services, ServiceCentre: p.ServiceCentre,
		Region: p.Region, CalendarId: p.CalendarID, MaxConcurrentJobs: p.MaxConcurrent, MaxDailyJobs: p.MaxDaily,
	}}, nil
}

// SetTechnicianStatus makes a technician active, on leave or inactive.
func SetTechnicianStatus(t *Technician, s eventsv1.TechnicianStatus) ([]proto.Message, error) {
	if _, ok := eventsv1.TechnicianStatus_name[int32(s)]; !ok || s == eventsv1.TechnicianStatus_TECHNICIAN_STATUS_UNSPECIFIED {
		return nil, (&violations{{Field: "status", Rule: "enum", Message: "must be active, on leave or inactive"}}).err()
	}
	if !t.Registered() {
		return nil, fmt.Errorf("technician: %w", ErrNotFound)
	}
	if t.Status == s {
		return nil, nil
	}
	return []proto.Message{&eventsv1.TechnicianStatusChanged{TechnicianId: t.ID, Status: s}}, nil
}

// BookJob takes one of the technician's slots for a work order. Booking the
// same work order twice decides nothing (idempotent by work order id).
func BookJob(t *Technician, workOrderID, complaintID, day string) ([]proto.Message, error) {
	if !t.Registered() {
		return nil, fmt.Errorf("technician: %w", ErrNotFound)
	}
	if _, ok := t.Open[workOrderID]; ok {
		return nil, nil
	}
	if t.Status != eventsv1.TechnicianStatus_TECHNICIAN_STATUS_ACTIVE {
		return nil, fmt.Errorf("technician %s is not active: %w", t.ID, ErrWrongState)
	}
	if uint32(t.OpenJobs()) >= t.MaxConcurrent || uint32(t.JobsOn(day)) >= t.MaxDaily {
		return nil, fmt.Errorf("technician %s: %w", t.ID, ErrNoCapacity)
	}
	return []proto.Message{&eventsv1.TechnicianJobBooked{
		TechnicianId: t.ID, WorkOrderId: workOrderID, ComplaintId: complaintID, Day: day,
	}}, nil
}

// ReleaseJob gives a work order's slot back; nothing when it holds none.
func ReleaseJob(t *Technician, workOrderID, reason string) []proto.Message {
	if _, ok := t.Open[workOrderID]; !ok {
		return nil
	}
	return []proto.Message{&eventsv1.TechnicianJobReleased{TechnicianId: t.ID, WorkOrderId: workOrderID, Reason: reason}}
}
