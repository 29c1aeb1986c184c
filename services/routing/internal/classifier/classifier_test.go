package classifier

import (
	"bytes"
	"os"
	"slices"
	"strings"
	"testing"
)

func TestFeaturesFoldWidthAndCase(t *testing.T) {
	got := Features("冒火花 ＳＰＡＲＫＳ, gas-leak")
	for _, want := range []string{"冒", "火花", "冒火花", "w:sparks", "g:#spa", "g:rks#", "w:gas", "w:leak"} {
		if !slices.Contains(got, want) {
			t.Errorf("features %v: missing %q", got, want)
		}
	}
	if slices.Contains(got, "b:sparks_gas") {
		t.Errorf("a word pair across punctuation: %v", got)
	}
	if !slices.IsSorted(got) {
		t.Errorf("not sorted: %v", got)
	}
	if !slices.Contains(Features("it doesn't work"), "w:doesnt") {
		t.Errorf("an apostrophe splits a word: %v", Features("it doesn't work"))
	}
}

func TestCuesMatchAtWordStarts(t *testing.T) {
	c := Cues{"fire": {"smok", "火花"}, "legal": {"sue"}}
	for _, tc := range []struct {
		text string
		want []string
	}{
		{"it was smoking", []string{"k:fire"}},
		{"冒出火花", []string{"k:fire"}},
		{"the issue is the door", nil}, // "issue" is not "sue"
		{"I'll sue you, it smokes", []string{"k:fire", "k:legal"}},
	} {
		got := c.compile().match(normalise(tc.text))
		if !slices.Equal(got, tc.want) {
			t.Errorf("%q: cues %v, want %v", tc.text, got, tc.want)
		}
	}
}

func TestParseDatasetRejectsBadLines(t *testing.T) {
	const head = "category\tseverity\tpriority\tdispatch\thazard\tlang\ttext\n"
	for _, tc := range []struct{ name, doc, want string }{
		{"header", "cat\ttext\n", "line 1: header"},
		{"columns", head + "service\tL1\timportant\tnone\t-\tzh\n", "line 2: want 7"},
		{"category", head + "quality\tL1\timportant\tnone\t-\tzh\t坏了\n", `line 2: category: unknown value "quality"`},
		{"severity", head + "service\tL5\timportant\tnone\t-\tzh\t坏了\n", `line 2: severity: unknown value "L5"`},
		{"dispatch", head + "service\tL1\timportant\tdrone\t-\tzh\t坏了\n", `line 2: dispatch: unknown value "drone"`},
		{"text", head + "service\tL1\timportant\tnone\t-\tzh\t \n", "line 2: text: required"},
		{"duplicate", head + "service\tL1\timportant\tnone\t-\tzh\t坏了\nservice\tL1\timportant\tnone\t-\tzh\t坏了\n", "line 3: text: duplicate of line 2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseDataset([]byte(tc.doc))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want it to say %q", err, tc.want)
			}
		})
	}
}

func smallSet(t *testing.T) []Example {
	t.Helper()
	doc, err := os.ReadFile("../../data/complaints.tsv")
	if err != nil {
		t.Fatal(err)
	}
	ex, err := ParseDataset(doc)
	if err != nil {
		t.Fatal(err)
	}
	return ex
}

// Train is deterministic: the same data and options give the same bytes,
// and a text the same prediction.
func TestTrainIsDeterministic(t *testing.T) {
	ex := smallSet(t)[:200]
	cues := Cues{"fire": {"smok", "火"}}
	opts := DefaultTrainOptions()
	opts.Epochs = 5
	a, err := Train(ex, cues, opts, "t").Marshal()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Train(ex, cues, opts, "t").Marshal()
	if !bytes.Equal(a, b) {
		t.Fatal("two trainings on the same data differ")
	}
	m, err := ParseModel(a)
	if err != nil {
		t.Fatal(err)
	}
	round, _ := m.Marshal()
	if !bytes.Equal(a, round) {
		t.Fatal("a parsed model does not marshal to the same bytes")
	}
	p1, p2 := m.Predict("冰箱冒烟了 smoking"), m.Predict("冰箱冒烟了 smoking")
	if p1.Category != p2.Category || p1.Confidence != p2.Confidence || !slices.Equal(p1.Deciding, p2.Deciding) || len(p1.Deciding) == 0 {
		t.Fatalf("predictions differ or explain nothing: %+v %+v", p1, p2)
	}
	if p1.Confidence <= 0 || p1.Confidence > 1 {
		t.Fatalf("confidence %v", p1.Confidence)
	}
}

func TestParseModelRejectsBadDocuments(t *testing.T) {
	opts := DefaultTrainOptions()
	opts.Epochs = 1
	good, err := Train(smallSet(t)[:50], Cues{"fire": {"火"}}, opts, "t").Marshal()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, from, to, want string }{
		{"unknown field", `"version"`, `"verzion": "x", "version"`, "unknown field"},
		{"no version", `"version": "t"`, `"version": ""`, "version: required"},
		{"head order", `"name": "category"`, `"name": "colour"`, "heads[0]: want category"},
		{"empty cue", `"火"`, `""`, "fire: empty term"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			doc := strings.Replace(string(good), tc.from, tc.to, 1)
			if doc == string(good) {
				t.Fatalf("edit %q not applied", tc.from)
			}
			_, err := ParseModel([]byte(doc))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want it to say %q", err, tc.want)
			}
		})
	}
}

// Folds cover every example once, with about the same share of each
// severity.
func TestFoldsPartitionAndStratify(t *testing.T) {
	ex := smallSet(t)
	folds := Folds(ex, 10, 1)
	seen := make([]int, len(ex))
	for _, f := range folds {
		l4 := 0
		for _, i := range f {
			seen[i]++
			if ex[i].Severity == "L4" {
				l4++
			}
		}
		if l4 < 10 || l4 > 13 {
			t.Errorf("fold with %d L4 examples of %d", l4, len(f))
		}
	}
	for i, n := range seen {
		if n != 1 {
			t.Fatalf("example %d in %d folds", i, n)
		}
	}
}
