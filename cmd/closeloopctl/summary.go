package main

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/closeloop/closeloop/libs/eventlog"
	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
)

// sealedName is the message that holds personal data. The raw log only has
// it sealed; the clear text is for intake's GetComplaint to give to those
// allowed to read it (see "show").
const sealedName = "closeloop.events.v1.SealedPersonalData"

// keyFields renders an event's payload as "field=value" pairs: scalars,
// enums, timestamps and durations, nested messages flattened with dots.
// Personal data is shown as "[personal data]".
func keyFields(e *eventsv1.Envelope) string {
	p := eventlog.Payload(e)
	if p == nil {
		return ""
	}
	var parts []string
	walk(p.ProtoReflect(), "", &parts)
	return strings.Join(parts, " ")
}

func walk(m protoreflect.Message, prefix string, out *[]string) {
	type kv struct {
		fd protoreflect.FieldDescriptor
		v  protoreflect.Value
	}
	var fields []kv
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		fields = append(fields, kv{fd, v})
		return true
	})
	sort.Slice(fields, func(i, j int) bool { return fields[i].fd.Number() < fields[j].fd.Number() })
	for _, f := range fields {
		name := prefix + string(f.fd.Name())
		switch {
		case f.fd.IsList():
			l := f.v.List()
			if f.fd.Message() != nil {
				*out = append(*out, fmt.Sprintf("%s=[%d]", name, l.Len()))
				continue
			}
			vals := make([]string, l.Len())
			for i := range vals {
				vals[i] = scalar(f.fd, l.Get(i))
			}
			*out = append(*out, fmt.Sprintf("%s=[%s]", name, strings.Join(vals, ",")))
		case f.fd.IsMap():
			*out = append(*out, fmt.Sprintf("%s={%d}", name, f.v.Map().Len()))
		case f.fd.Message() != nil:
			msg := f.v.Message()
			switch f.fd.Message().FullName() {
			case sealedName:
				*out = append(*out, name+"=[personal data]")
			case "google.protobuf.Timestamp":
				t := time.Unix(msg.Get(msg.Descriptor().Fields().ByName("seconds")).Int(), msg.Get(msg.Descriptor().Fields().ByName("nanos")).Int()).UTC()
				*out = append(*out, name+"="+t.Format(time.RFC3339))
			case "google.protobuf.Duration":
				d := time.Duration(msg.Get(msg.Descriptor().Fields().ByName("seconds")).Int())*time.Second + time.Duration(msg.Get(msg.Descriptor().Fields().ByName("nanos")).Int())
				*out = append(*out, name+"="+d.String())
			default:
				walk(msg, name+".", out)
			}
		default:
			*out = append(*out, name+"="+scalar(f.fd, f.v))
		}
	}
}

func scalar(fd protoreflect.FieldDescriptor, v protoreflect.Value) string {
	switch fd.Kind() {
	case protoreflect.EnumKind:
		if ev := fd.Enum().Values().ByNumber(v.Enum()); ev != nil {
			return shortEnum(string(fd.Enum().Name()), string(ev.Name()))
		}
		return fmt.Sprint(v.Enum())
	case protoreflect.StringKind:
		s := v.String()
		if strings.ContainsAny(s, " \t\n") {
			return fmt.Sprintf("%q", s)
		}
		return s
	case protoreflect.BytesKind:
		return fmt.Sprintf("%x", v.Bytes())
	default:
		return v.String()
	}
}

// shortEnum drops the enum's prefix: SEVERITY_L4 -> L4, CHANNEL_WEB_FORM -> WEB_FORM.
func shortEnum(enum, value string) string {
	var b strings.Builder
	for i, r := range enum {
		if i > 0 && r >= 'A' && r <= 'Z' {
			b.WriteByte('_')
		}
		b.WriteRune(r)
	}
	return strings.TrimPrefix(value, strings.ToUpper(b.String())+"_")
}
