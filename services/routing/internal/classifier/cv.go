package classifier

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
)

// Adjust turns the model's prediction into the final verdict (routing's
// rule floors); nil keeps the model's.
type Adjust func(text string, p Prediction) Prediction

// Report is the outcome of a k-fold cross-validation (every example
// classified once, by a model trained on the other folds) or of a
// held-out evaluation.
type Report struct {
	K, Examples int
	// Heads: confusion matrix and figures of each head, in HeadNames order.
	Heads []HeadReport
	// UrgentRecall: of the examples labelled urgent, the share classified
	// urgent; SafetyLegalRecall the same for those whose hazard is safety
	// or legal.
	UrgentRecall, SafetyLegalRecall Ratio
	// Missed are the urgent examples not classified urgent.
	Missed []string
	// Below: examples whose confidence was under the threshold, and how
	// many of the others had category and severity right.
	Threshold    float64
	Below        int
	AboveCorrect Ratio
	BelowCorrect Ratio
	// ByLang: category and severity right, per language (zh, en, mixed).
	ByLang map[string]Ratio
}

// HeadReport is one head's figures.
type HeadReport struct {
	Name    string
	Classes []string
	// Confusion[true][predicted] counts.
	Confusion [][]int
}

// Ratio is a count out of a total.
type Ratio struct{ Hit, Of int }

func (r Ratio) Value() float64 {
	if r.Of == 0 {
		return 0
	}
	return float64(r.Hit) / float64(r.Of)
}

func (r Ratio) String() string { return fmt.Sprintf("%.3f (%d/%d)", r.Value(), r.Hit, r.Of) }

// Accuracy is the share of examples classified right.
func (h HeadReport) Accuracy() float64 {
	hit, all := 0, 0
	for t, row := range h.Confusion {
		for p, n := range row {
			all += n
			if p == t {
				hit += n
			}
		}
	}
	return Ratio{hit, all}.Value()
}

// Recall of a class: the share of its examples classified as it.
func (h HeadReport) Recall(class int) Ratio {
	r := Ratio{Hit: h.Confusion[class][class]}
	for _, n := range h.Confusion[class] {
		r.Of += n
	}
	return r
}

// MacroAccuracy is the mean of the classes' recalls (balanced accuracy):
// every class counts alike, however many examples it has.
func (h HeadReport) MacroAccuracy() float64 {
	sum, n := 0.0, 0
	for c := range h.Classes {
		if r := h.Recall(c); r.Of > 0 {
			sum += r.Value()
			n++
		}
	}
	if n == 0 {
		return 0
	}
	return sum / float64(n)
}

// Head is the report of a named head.
func (r Report) Head(name string) HeadReport {
	for _, h := range r.Heads {
		if h.Name == name {
			return h
		}
	}
	return HeadReport{}
}

// Folds splits the examples into k folds, stratified by severity: each
// fold has about the same share of every severity. Deterministic for a
// seed.
func Folds(examples []Example, k int, seed uint64) [][]int {
	order := make([]int, len(examples))
	for i := range order {
		order[i] = i
	}
	rand.New(rand.NewPCG(seed, 0x5eed)).Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
	sev := Classes[HeadSeverity]
	slices.SortStableFunc(order, func(a, b int) int {
		return slices.Index(sev, examples[a].Severity) - slices.Index(sev, examples[b].Severity)
	})
	folds := make([][]int, k)
	for i, n := range order {
		folds[i%k] = append(folds[i%k], n)
	}
	for _, f := range folds {
		slices.Sort(f)
	}
	return folds
}

func newReport(k, n int, threshold float64) Report {
	r := Report{K: k, Examples: n, Threshold: threshold, ByLang: map[string]Ratio{}}
	for _, name := range HeadNames {
		n := len(Classes[name])
		h := HeadReport{Name: name, Classes: Classes[name], Confusion: make([][]int, n)}
		for i := range h.Confusion {
			h.Confusion[i] = make([]int, n)
		}
		r.Heads = append(r.Heads, h)
	}
	return r
}

// Evaluate classifies examples the model was not trained on (K is 0).
func Evaluate(m *Model, examples []Example, adjust Adjust, threshold float64) Report {
	r := newReport(0, len(examples), threshold)
	for _, e := range examples {
		p := m.Predict(e.Text)
		if adjust != nil {
			p = adjust(e.Text, p)
		}
		r.record(e, p)
	}
	return r
}

// CrossValidate trains k models, each on all folds but one, and
// classifies the left-out fold with it (then adjust, when not nil).
func CrossValidate(examples []Example, cues Cues, k int, opts TrainOptions, adjust Adjust, threshold float64) Report {
	r := newReport(k, len(examples), threshold)
	for _, fold := range Folds(examples, k, opts.Seed) {
		var train []Example
		for i, e := range examples {
			if _, held := slices.BinarySearch(fold, i); !held {
				train = append(train, e)
			}
		}
		m := Train(train, cues, opts, "cv")
		for _, i := range fold {
			e := examples[i]
			p := m.Predict(e.Text)
			if adjust != nil {
				p = adjust(e.Text, p)
			}
			r.record(e, p)
		}
	}
	return r
}

func (r *Report) record(e Example, p Prediction) {
	got := map[string]string{HeadCategory: p.Category.Class, HeadSeverity: p.Severity.Class, HeadPriority: p.Priority.Class, HeadDispatch: p.Dispatch.Class}
	for _, h := range r.Heads {
		t, g := slices.Index(h.Classes, e.Label(h.Name)), slices.Index(h.Classes, got[h.Name])
		h.Confusion[t][g]++
	}
	if e.Priority == "urgent" {
		hit := p.Priority.Class == "urgent"
		r.UrgentRecall.Of++
		if hit {
			r.UrgentRecall.Hit++
		} else {
			r.Missed = append(r.Missed, fmt.Sprintf("%s/%s→%s/%s: %s", e.Severity, e.Priority, p.Severity.Class, p.Priority.Class, e.Text))
		}
		if e.Hazard == "safety" || e.Hazard == "legal" {
			r.SafetyLegalRecall.Of++
			if hit {
				r.SafetyLegalRecall.Hit++
			}
		}
	}
	right := p.Category.Class == e.Category && p.Severity.Class == e.Severity
	side := &r.AboveCorrect
	if p.Confidence < r.Threshold {
		r.Below++
		side = &r.BelowCorrect
	}
	side.Of++
	lang := r.ByLang[e.Lang]
	lang.Of++
	if right {
		side.Hit++
		lang.Hit++
	}
	r.ByLang[e.Lang] = lang
}

// String prints the figures and confusion matrices as Markdown.
func (r Report) String() string {
	var b strings.Builder
	if r.K > 0 {
		fmt.Fprintf(&b, "%d-fold cross-validation, %d examples\n\n", r.K, r.Examples)
	} else {
		fmt.Fprintf(&b, "%d examples the model was not trained on\n\n", r.Examples)
	}
	fmt.Fprintf(&b, "| figure | value |\n|---|---|\n")
	fmt.Fprintf(&b, "| recall of urgent (safety, legal, major loss) | %s |\n", r.UrgentRecall)
	fmt.Fprintf(&b, "| recall of urgent, safety and legal only | %s |\n", r.SafetyLegalRecall)
	for _, h := range r.Heads {
		fmt.Fprintf(&b, "| %s: macro accuracy (mean recall of its classes) / accuracy | %.3f / %.3f |\n", h.Name, h.MacroAccuracy(), h.Accuracy())
	}
	fmt.Fprintf(&b, "| below confidence %.2f (to triage) | %s |\n", r.Threshold, Ratio{r.Below, r.Examples})
	fmt.Fprintf(&b, "| category and severity right, confidence >= %.2f / below | %s / %s |\n", r.Threshold, r.AboveCorrect, r.BelowCorrect)
	fmt.Fprintf(&b, "| category and severity right, zh / en / mixed | %s / %s / %s |\n", r.ByLang["zh"], r.ByLang["en"], r.ByLang["mixed"])
	for _, h := range r.Heads {
		fmt.Fprintf(&b, "\n%s (rows: labelled, columns: classified)\n\n| | %s | recall |\n|---|%s---|\n", h.Name, strings.Join(h.Classes, " | "), strings.Repeat("---|", len(h.Classes)))
		for t, row := range h.Confusion {
			cells := make([]string, len(row))
			for p, n := range row {
				cells[p] = fmt.Sprint(n)
			}
			fmt.Fprintf(&b, "| **%s** | %s | %.3f |\n", h.Classes[t], strings.Join(cells, " | "), h.Recall(t).Value())
		}
	}
	if len(r.Missed) > 0 {
		fmt.Fprintf(&b, "\nurgent, not classified urgent (labelled → classified):\n")
		for _, m := range r.Missed {
			fmt.Fprintf(&b, "- %s\n", m)
		}
	}
	return b.String()
}
