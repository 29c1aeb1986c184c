package classifier

import (
	"math"
	"slices"
	"strings"
	"unicode"
)

// Features are the sorted, distinct feature names of a text:
//   - Han characters, one to three in a row ("火", "火花", "冒火花");
//   - Latin words ("w:sparks"), word pairs ("b:gas_leak"), and the three- and
//     four-letter pieces of each word with its edges marked ("g:#spa",
//     "g:rks#"), which still match a misspelt or inflected word.
//
// Sorted so that training and scoring visit them in one order whatever the
// text: the same text gives the same sums, bit for bit.
func Features(text string) []string {
	set := map[string]struct{}{}
	var han []rune
	var word []rune
	prevWord := ""
	flushHan := func() {
		for n := 1; n <= 3; n++ {
			for i := 0; i+n <= len(han); i++ {
				set[string(han[i:i+n])] = struct{}{}
			}
		}
		han = han[:0]
	}
	flushWord := func() {
		if len(word) == 0 {
			return
		}
		w := string(word)
		set["w:"+w] = struct{}{}
		if prevWord != "" {
			set["b:"+prevWord+"_"+w] = struct{}{}
		}
		prevWord = w
		padded := append(append([]rune{'#'}, word...), '#')
		for n := 3; n <= 4; n++ {
			for i := 0; i+n <= len(padded); i++ {
				set["g:"+string(padded[i:i+n])] = struct{}{}
			}
		}
		word = word[:0]
	}
	for _, r := range normalise(text) {
		switch {
		case unicode.Is(unicode.Han, r):
			flushWord()
			han = append(han, r)
		case r < unicode.MaxASCII && (unicode.IsLetter(r) || unicode.IsDigit(r)):
			flushHan()
			word = append(word, r)
		case r == '\'':
			// "doesn't", "won't": one word.
		default:
			flushHan()
			flushWord()
			if !unicode.IsSpace(r) {
				prevWord = "" // punctuation ends a word pair
			}
		}
	}
	flushHan()
	flushWord()
	out := make([]string, 0, len(set))
	for f := range set {
		out = append(out, f)
	}
	slices.Sort(out)
	return out
}

// normalise folds case and full-width forms (ＡＢＣ，１２３) to their ASCII.
func normalise(text string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 0xFF01 && r <= 0xFF5E:
			r -= 0xFEE0
		case r == 0x3000:
			r = ' '
		}
		return unicode.ToLower(r)
	}, text)
}

// vector is a text's features that the model knows, as indexes into its
// vocabulary with their values: the n-grams share a unit length, so a long
// text does not outweigh a short one; a cue concept counts cueWeight
// whatever the length.
type vector struct {
	idx []int
	val []float64
}

// cueWeight is the value of a cue concept's feature.
const cueWeight = 1

func vectorise(feats []string, index map[string]int) vector {
	v := vector{}
	grams := 0
	for _, f := range feats {
		i, ok := index[f]
		if !ok {
			continue
		}
		v.idx = append(v.idx, i)
		if strings.HasPrefix(f, "k:") {
			v.val = append(v.val, cueWeight)
		} else {
			v.val = append(v.val, -1) // set below, once the n-grams are counted
			grams++
		}
	}
	for n, x := range v.val {
		if x < 0 {
			v.val[n] = 1 / math.Sqrt(float64(grams))
		}
	}
	return v
}
