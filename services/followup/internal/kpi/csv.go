package kpi

import (
	"encoding/csv"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
)

// slaTargets are the CSV's SLA columns, in enum order, so every export has
// the same columns whatever the data.
func slaTargets() []eventsv1.SlaTarget {
	var out []eventsv1.SlaTarget
	for t := int32(1); eventsv1.SlaTarget_name[t] != ""; t++ {
		out = append(out, eventsv1.SlaTarget(t))
	}
	return out
}

// CSVHeader is the export's header line.
func CSVHeader() []string {
	h := []string{
		"group", "period_start", "received", "withdrawn", "resolved", "reopened", "repeats",
		"first_contact_resolved", "surveys_answered", "csi_average",
		"csi_1", "csi_2", "csi_3", "csi_4", "csi_5",
		"resolution_rate", "reopen_rate", "repeat_rate", "first_contact_rate",
		"accept_count", "accept_mean_s", "accept_p90_s",
		"respond_count", "respond_mean_s", "respond_p90_s",
		"resolve_count", "resolve_mean_s", "resolve_p90_s",
		"closed_satisfied", "closed_neutral", "closed_no_response",
	}
	for _, t := range slaTargets() {
		n := strings.ToLower(strings.TrimPrefix(t.String(), "SLA_TARGET_"))
		h = append(h, "sla_"+n+"_met", "sla_"+n+"_breached", "sla_"+n+"_rate")
	}
	return h
}

// WriteCSV writes rows under CSVHeader. Durations are in seconds, rates are
// fractions, the period start is RFC 3339 in the query's time zone.
func WriteCSV(w io.Writer, rows []Row) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(CSVHeader()); err != nil {
		return fmt.Errorf("kpi: csv header: %w", err)
	}
	u := func(v uint32) string { return strconv.FormatUint(uint64(v), 10) }
	f := func(v float64) string { return strconv.FormatFloat(v, 'f', 4, 64) }
	s := func(d time.Duration) string { return strconv.FormatFloat(d.Seconds(), 'f', 0, 64) }
	for _, r := range rows {
		period := ""
		if !r.PeriodStart.IsZero() {
			period = r.PeriodStart.Format(time.RFC3339)
		}
		rec := []string{
			r.GroupKey, period, u(r.Received), u(r.Withdrawn), u(r.Resolved), u(r.Reopened), u(r.Repeats),
			u(r.FirstContactResolved), u(r.SurveysAnswered), f(r.CSIAverage),
			u(r.CSIDistribution[0]), u(r.CSIDistribution[1]), u(r.CSIDistribution[2]), u(r.CSIDistribution[3]), u(r.CSIDistribution[4]),
			f(r.ResolutionRate), f(r.ReopenRate), f(r.RepeatRate), f(r.FirstContactRate),
			u(r.TimeToAccept.Count), s(r.TimeToAccept.Mean), s(r.TimeToAccept.P90),
			u(r.TimeToRespond.Count), s(r.TimeToRespond.Mean), s(r.TimeToRespond.P90),
			u(r.TimeToResolve.Count), s(r.TimeToResolve.Mean), s(r.TimeToResolve.P90),
			u(r.ClosedSatisfied), u(r.ClosedNeutral), u(r.ClosedNoResponse),
		}
		for _, t := range slaTargets() {
			var got SLA
			for _, x := range r.SLA {
				if x.Target == t {
					got = x
				}
			}
			rec = append(rec, u(got.Met), u(got.Breached), f(got.Rate))
		}
		if err := cw.Write(rec); err != nil {
			return fmt.Errorf("kpi: csv row: %w", err)
		}
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("kpi: csv: %w", err)
	}
	return nil
}
