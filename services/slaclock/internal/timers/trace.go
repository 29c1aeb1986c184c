package timers

import (
	"encoding/hex"
)

// Trace is the trace context of the event that caused a clock's state
// (its W3C traceparent without the tracestate): the parent of the span
// that fires the clock. 24 bytes and a flag, so that the index keeps one
// per open clock.
type Trace struct {
	TraceID [16]byte
	SpanID  [8]byte
	Sampled bool
}

// ParseTrace reads a W3C traceparent ("00-<trace id>-<span id>-<flags>");
// anything else is the zero Trace (no trace to continue).
func ParseTrace(traceparent string) Trace {
	var t Trace
	if len(traceparent) != 55 || traceparent[2] != '-' || traceparent[35] != '-' || traceparent[52] != '-' {
		return Trace{}
	}
	var flags [1]byte
	if _, err := hex.Decode(t.TraceID[:], []byte(traceparent[3:35])); err != nil {
		return Trace{}
	}
	if _, err := hex.Decode(t.SpanID[:], []byte(traceparent[36:52])); err != nil {
		return Trace{}
	}
	if _, err := hex.Decode(flags[:], []byte(traceparent[53:])); err != nil {
		return Trace{}
	}
	t.Sampled = flags[0]&1 == 1
	return t
}

// IsZero reports that there is no trace.
func (t Trace) IsZero() bool { return t.TraceID == [16]byte{} }

// Traceparent is the W3C traceparent of t ("" for none).
func (t Trace) Traceparent() string {
	if t.IsZero() {
		return ""
	}
	flags := "00"
	if t.Sampled {
		flags = "01"
	}
	return "00-" + hex.EncodeToString(t.TraceID[:]) + "-" + hex.EncodeToString(t.SpanID[:]) + "-" + flags
}
