package web

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"strings"
	"time"
)

// The customer's status link: /s/{complaint id}.{sig}, where sig is
// base64url(expiry as 8 bytes big-endian, Unix seconds ‖ the first 16
// bytes of HMAC-SHA256(secret, "status-v1" NUL id NUL expiry)). The link
// is the customer's credential: it names one complaint and ends.

const statusMACSize = 16

func statusMAC(secret []byte, id string, exp int64) []byte {
	m := hmac.New(sha256.New, secret)
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(exp))
	m.Write([]byte("status-v1\x00" + id + "\x00"))
	m.Write(b[:])
	return m.Sum(nil)[:statusMACSize]
}

// statusPath is the signed path of a complaint's status page, valid until
// exp (rounded down to the second).
func statusPath(secret []byte, id string, exp time.Time) string {
	e := exp.Unix()
	b := binary.BigEndian.AppendUint64(nil, uint64(e))
	b = append(b, statusMAC(secret, id, e)...)
	return "/s/" + id + "." + base64.RawURLEncoding.EncodeToString(b)
}

// checkStatusLink returns the complaint id of a link's last path segment
// ("{id}.{sig}") when its signature verifies and it has not expired at
// now; ok is false otherwise, without saying why.
func checkStatusLink(secret []byte, seg string, now time.Time) (id string, ok bool) {
	i := strings.LastIndexByte(seg, '.')
	if i <= 0 {
		return "", false
	}
	id = seg[:i]
	raw, err := base64.RawURLEncoding.DecodeString(seg[i+1:])
	if err != nil || len(raw) != 8+statusMACSize {
		return "", false
	}
	exp := int64(binary.BigEndian.Uint64(raw[:8]))
	if !hmac.Equal(raw[8:], statusMAC(secret, id, exp)) || !now.Before(time.Unix(exp, 0)) {
		return "", false
	}
	return id, true
}
