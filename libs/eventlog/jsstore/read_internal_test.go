package jsstore

import "testing"

func TestAckSequences(t *testing.T) {
	for _, c := range []struct {
		reply            string
		stream, consumer uint64
		ok               bool
	}{
		{"$JS.ACK.EVENTS.read1.1.4021.17.1732329600000000000.99", 4021, 17, true},
		{"$JS.ACK.hub.ACCHASH.EVENTS.read1.1.4021.17.1732329600000000000.99.rnd", 4021, 17, true},
		{"$JS.ACK.hub.ACCHASH.EVENTS.read1.1.4021.17.1732329600000000000.99", 4021, 17, true},
		{"$JS.ACK.EVENTS.read1.1.4021.17.1732329600000000000", 0, 0, false},      // 8 tokens
		{"$JS.ACK.EVENTS.read1.1.4021.17.1732329600000000000.99.x", 0, 0, false}, // 10 tokens
		{"$JS.ACK.EVENTS.read1.1.x.17.1732329600000000000.99", 0, 0, false},
		{"_INBOX.abc.1.2.3.4.5.6.7", 0, 0, false},
		{"", 0, 0, false},
	} {
		stream, consumer, ok := ackSequences(c.reply)
		if ok != c.ok || (ok && (stream != c.stream || consumer != c.consumer)) {
			t.Errorf("ackSequences(%q) = %d, %d, %v; want %d, %d, %v", c.reply, stream, consumer, ok, c.stream, c.consumer, c.ok)
		}
	}
}
