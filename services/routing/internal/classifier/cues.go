package classifier

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Cues are lexicons of plain words, one per concept ("fire_smoke",
// "delivery"): each concept is one more feature ("k:fire_smoke") that fires
// when any of its terms is in the text. They let a few hundred examples
// generalise to words the examples do not have. The trainer reads them
// from data/cues.json and the model keeps them: a model and its cues go
// together.
type Cues map[string][]string

// ParseCues reads a cue file; the key "_" is a comment.
func ParseCues(doc []byte) (Cues, error) {
	var raw map[string]json.RawMessage
	if err := json.NewDecoder(bytes.NewReader(doc)).Decode(&raw); err != nil {
		return nil, fmt.Errorf("cues: %w", err)
	}
	c := Cues{}
	for k, v := range raw {
		if k == "_" {
			continue
		}
		var terms []string
		if err := json.Unmarshal(v, &terms); err != nil {
			return nil, fmt.Errorf("cues: %s: %w", k, err)
		}
		c[k] = terms
	}
	return c, c.check()
}

func (c Cues) check() error {
	for _, k := range slices.Sorted(maps.Keys(c)) {
		if k == "" || strings.ContainsAny(k, " \t") {
			return fmt.Errorf("cues: concept %q: a name without spaces required", k)
		}
		if len(c[k]) == 0 {
			return fmt.Errorf("cues: %s: at least one term required", k)
		}
		for _, t := range c[k] {
			if strings.TrimSpace(normalise(t)) == "" {
				return fmt.Errorf("cues: %s: empty term", k)
			}
		}
	}
	return nil
}

// cueSet is Cues ready to match: concepts in sorted order, terms
// normalised once.
type cueSet []cueConcept

type cueConcept struct {
	feature string
	terms   []string
}

func (c Cues) compile() cueSet {
	var out cueSet
	for _, k := range slices.Sorted(maps.Keys(c)) {
		cc := cueConcept{feature: "k:" + k}
		for _, t := range c[k] {
			cc.terms = append(cc.terms, strings.TrimSpace(normalise(t)))
		}
		out = append(out, cc)
	}
	return out
}

// match lists the concepts present in a normalised text, sorted.
func (cs cueSet) match(text string) []string {
	var out []string
	for _, c := range cs {
		if slices.ContainsFunc(c.terms, func(t string) bool { return termIn(t, text) }) {
			out = append(out, c.feature)
		}
	}
	return out
}

// termIn: a term with Latin letters matches at the start of a word, any
// other anywhere.
func termIn(term, text string) bool {
	latin := strings.IndexFunc(term, func(r rune) bool { return r < utf8.RuneSelf && unicode.IsLetter(r) }) >= 0
	if !latin {
		return strings.Contains(text, term)
	}
	for from := 0; from < len(text); {
		i := strings.Index(text[from:], term)
		if i < 0 {
			return false
		}
		at := from + i
		if at == 0 {
			return true
		}
		if r, _ := utf8.DecodeLastRuneInString(text[:at]); !(r < utf8.RuneSelf && (unicode.IsLetter(r) || unicode.IsDigit(r))) {
			return true
		}
		from = at + 1
	}
	return false
}

// featuresOf are the text's n-gram features and cue concepts, sorted.
func featuresOf(text string, cues cueSet) []string {
	f := Features(text)
	if len(cues) == 0 {
		return f
	}
	f = append(f, cues.match(normalise(text))...)
	slices.Sort(f)
	return f
}
