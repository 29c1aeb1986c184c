package view

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"slices"
	"strings"
	"unicode"
)

// Index is the keyed blind index: the view keeps, for a description, only
// the truncated HMACs of its terms, and for a product serial only the HMAC
// of the normalised serial. A search hashes its terms the same way. Without
// the secret the terms can neither be read nor tested against guesses; a
// phone number or name written into a description is not kept in clear.
type Index struct {
	secret []byte
}

// NewIndex keys the index (the secret must stay the same between a
// snapshot and its restore: Check tells).
func NewIndex(secret []byte) *Index { return &Index{secret: slices.Clone(secret)} }

// maxTerms bounds what one description costs in the view.
const maxTerms = 512

func (x *Index) hash(kind, s string) uint64 {
	m := hmac.New(sha256.New, x.secret)
	m.Write([]byte(kind))
	m.Write([]byte{0})
	m.Write([]byte(s))
	return binary.BigEndian.Uint64(m.Sum(nil)[:8])
}

// Check is a keyed fingerprint of the secret, kept in the snapshot.
func (x *Index) Check() uint64 { return x.hash("check", "console-blind-index") }

// Terms hashes the searchable terms of text, sorted and without repeats.
func (x *Index) Terms(text string) []uint64 {
	var out []uint64
	for _, t := range tokens(text, false) {
		out = append(out, x.hash("t", t))
		if len(out) >= maxTerms {
			break
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// QueryTerms hashes what a search for text must find (every term).
func (x *Index) QueryTerms(text string) []uint64 {
	var out []uint64
	for _, t := range tokens(text, true) {
		out = append(out, x.hash("t", t))
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// Serial hashes a product serial, normalised (upper case, letters and
// digits only).
func (x *Index) Serial(s string) uint64 {
	var b strings.Builder
	for _, r := range strings.ToUpper(s) {
		if unicode.IsLetter(r) || unicode.IsDigit(r) {
			b.WriteRune(r)
		}
	}
	if b.Len() == 0 {
		return 0
	}
	return x.hash("serial", b.String())
}

// tokens splits text into terms: runs of Han, kana or Hangul characters
// give their overlapping pairs (Chinese has no spaces; a pair is the
// smallest term worth matching), other letters and digits give lower-case
// words. A query run of one such character gives itself, which matches
// nothing: a search needs two.
func tokens(text string, query bool) []string {
	var out []string
	var word []rune
	var cjk []rune
	flushWord := func() {
		if len(word) > 0 {
			out = append(out, strings.ToLower(string(word)))
			word = word[:0]
		}
	}
	flushCJK := func() {
		if len(cjk) == 1 && query {
			out = append(out, string(cjk))
		}
		for i := 0; i+1 < len(cjk); i++ {
			out = append(out, string(cjk[i:i+2]))
		}
		cjk = cjk[:0]
	}
	for _, r := range text {
		switch {
		case unicode.In(r, unicode.Han, unicode.Hiragana, unicode.Katakana, unicode.Hangul):
			flushWord()
			cjk = append(cjk, r)
		case unicode.IsLetter(r) || unicode.IsDigit(r):
			flushCJK()
			word = append(word, r)
		default:
			flushWord()
			flushCJK()
		}
	}
	flushWord()
	flushCJK()
	return out
}

// containsAll: every one of want (sorted) is in have (sorted).
func containsAll(have, want []uint64) bool {
	for _, w := range want {
		if _, ok := slices.BinarySearch(have, w); !ok {
			return false
		}
	}
	return true
}
