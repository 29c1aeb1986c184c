package timers

import (
	"bytes"
	"container/heap"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
)

// Encode writes the index (open clocks with the trace each firing
// continues, stream versions, pending retries with theirs) in a canonical
// form: complaints sorted by key, clocks by target and sequence, calendars
// and warning sets spelled out rather than interned, so the same schedule
// encodes to the same bytes however it was built. Armed
// due instants are not written (Restore recomputes them from the clocks),
// except a pending retry, which a clock may not cover (a trigger whose
// decision failed).
func (x *Index) Encode() []byte {
	x.mu.Lock()
	defer x.mu.Unlock()
	order := make([]uint32, 0, len(x.byKey))
	for _, i := range x.byKey {
		order = append(order, i)
	}
	slices.SortFunc(order, func(i, j uint32) int { return bytes.Compare(x.slots[i].id[:], x.slots[j].id[:]) })
	b := binary.AppendUvarint(make([]byte, 0, 64*len(order)), uint64(len(order)))
	for _, i := range order {
		s := &x.slots[i]
		// A complaint is its 16-byte key, and its id when that is not a
		// canonical UUID (the key is then a hash of it).
		if odd, ok := x.odd[s.id]; ok {
			b = append(b, 1)
			b = appendString(b, odd)
		} else {
			b = append(b, 0)
			b = append(b, s.id[:]...)
		}
		b = binary.AppendUvarint(b, uint64(s.version))
		var retry int64
		if s.retry {
			retry = max(s.next, 1) // disarmed while being fired: due at once
		}
		b = binary.AppendVarint(b, retry)
		if retry != 0 {
			b = appendTrace(b, x.retries[s.id])
		}
		// The order of a slot's clocks means nothing: sort them in place.
		clocks := s.clocks
		slices.SortFunc(clocks, func(a, b sched) int {
			if a.target != b.target {
				return int(a.target) - int(b.target)
			}
			return int(a.seq) - int(b.seq)
		})
		b = binary.AppendUvarint(b, uint64(len(clocks)))
		for j := range clocks {
			c := &clocks[j]
			b = binary.AppendUvarint(b, uint64(c.target))
			b = binary.AppendUvarint(b, uint64(c.seq))
			b = binary.AppendVarint(b, c.deadline)
			b = binary.AppendVarint(b, c.budget)
			paused := byte(0)
			if c.paused() {
				paused = 1
			}
			b = append(b, paused, c.warned)
			b = appendTrace(b, c.trace())
			b = appendString(b, x.cals[c.cal])
			warns := x.warns[c.warnSet]
			b = binary.AppendUvarint(b, uint64(len(warns)))
			for _, w := range warns {
				b = binary.AppendUvarint(b, uint64(w))
			}
		}
	}
	return b
}

// appendTrace writes a trace as one byte (0: none, 1: not sampled, 2:
// sampled) and, unless none, its trace and span ids.
func appendTrace(b []byte, t Trace) []byte {
	switch {
	case t.IsZero():
		return append(b, 0)
	case t.Sampled:
		b = append(b, 2)
	default:
		b = append(b, 1)
	}
	b = append(b, t.TraceID[:]...)
	return append(b, t.SpanID[:]...)
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// decoder reads what Encode wrote; the first error sticks.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = errors.New("truncated or malformed number")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.err = errors.New("truncated or malformed number")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) bytes(n uint64) []byte {
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)) {
		d.err = fmt.Errorf("%d bytes announced, %d left", n, len(d.b))
		return nil
	}
	out := d.b[:n]
	d.b = d.b[n:]
	return out
}

func (d *decoder) string() string { return string(d.bytes(d.uvarint())) }

func (d *decoder) trace() Trace {
	var t Trace
	kind := d.bytes(1)
	if d.err != nil || kind[0] == 0 {
		return t
	}
	if kind[0] > 2 {
		d.err = fmt.Errorf("trace kind %d unknown", kind[0])
		return t
	}
	copy(t.TraceID[:], d.bytes(16))
	copy(t.SpanID[:], d.bytes(8))
	t.Sampled = kind[0] == 2
	return t
}

// Restore replaces the index with one Encode wrote. On an error the index
// is left as it was.
func (x *Index) Restore(data []byte) error {
	fresh := New(x.calOf)
	d := &decoder{b: data}
	n := d.uvarint()
	for k0 := uint64(0); k0 < n && d.err == nil; k0++ {
		var (
			k   key
			odd string
		)
		switch kind := d.bytes(1); {
		case len(kind) == 1 && kind[0] == 1:
			odd = d.string()
			k, _ = keyOf(odd)
		case len(kind) == 1 && kind[0] == 0:
			copy(k[:], d.bytes(16))
		case d.err == nil:
			d.err = fmt.Errorf("complaint kind %d unknown", kind[0])
		}
		version, retry := d.uvarint(), d.varint()
		var retryTrace Trace
		if retry != 0 {
			retryTrace = d.trace()
		}
		if version > uint64(^uint32(0)) {
			d.err = fmt.Errorf("complaint #%d: version %d out of range", k0, version)
		}
		nc := d.uvarint()
		if nc > uint64(len(d.b)) {
			d.err = fmt.Errorf("complaint #%d: %d clocks announced, %d bytes left", k0, nc, len(d.b))
		}
		if d.err != nil {
			break
		}
		i, _ := fresh.slotForKey(k, odd, true)
		s := &fresh.slots[i]
		s.version, s.retry = uint32(version), retry != 0
		if !retryTrace.IsZero() {
			fresh.retries[k] = retryTrace
		}
		for j := uint64(0); j < nc && d.err == nil; j++ {
			target, seq := d.uvarint(), d.uvarint()
			deadline, budget := d.varint(), d.varint()
			flags := d.bytes(2)
			tr := d.trace()
			cal := d.string()
			nw := d.uvarint()
			if nw > 8 {
				d.err = fmt.Errorf("complaint #%d: %d warning thresholds, at most 8", k0, nw)
				break
			}
			warns := make([]uint32, nw)
			for w := range warns {
				warns[w] = uint32(d.uvarint())
			}
			if d.err != nil || target > 255 || seq > 65535 || len(flags) != 2 {
				if d.err == nil {
					d.err = fmt.Errorf("complaint #%d: clock out of range", k0)
				}
				break
			}
			ci, wi := fresh.intern(cal, warns)
			c := sched{deadline: deadline, budget: budget, seq: uint16(seq), target: uint8(target), warned: flags[1], warnSet: wi, cal: ci}
			c.setPaused(flags[0] == 1)
			c.setTrace(tr)
			s.clocks = append(s.clocks, c)
		}
		fresh.open += len(s.clocks)
		switch {
		case d.err != nil:
		case len(s.clocks) == 0 && !s.retry:
			fresh.release(i)
		default:
			fresh.arm(i, retry)
		}
	}
	if d.err == nil && len(d.b) != 0 {
		d.err = fmt.Errorf("%d bytes left over", len(d.b))
	}
	if d.err != nil {
		return fmt.Errorf("timers: restore: %w", d.err)
	}
	x.replace(fresh)
	return nil
}

// arm sets a restored slot's next due instant: the earliest of its clocks'
// and of its pending retry.
func (x *Index) arm(i uint32, retry int64) {
	s := &x.slots[i]
	next := x.nextDue(s)
	if retry != 0 && (next == 0 || retry < next) {
		next = retry
	}
	s.next = next
	if next != 0 {
		heap.Push(&x.due, item{next, i})
	}
}

// Reset empties the index.
func (x *Index) Reset() { x.replace(New(x.calOf)) }

// replace takes over fresh's schedule (fresh is not used after).
func (x *Index) replace(fresh *Index) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.slots, x.free, x.byKey, x.odd, x.due, x.retries = fresh.slots, fresh.free, fresh.byKey, fresh.odd, fresh.due, fresh.retries
	x.open, x.cals, x.warns = fresh.open, fresh.cals, fresh.warns
	x.signal()
}
