package classifier

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
)

// Model is a linear model over the text's features (Features), one softmax
// head per label: category, severity, priority and dispatch. It is data: a
// versioned JSON file trained by cmd/classifier from data/complaints.tsv.
type Model struct {
	Version string `json:"version"`
	// TrainedOn names the data set the model was trained on.
	TrainedOn struct {
		File       string `json:"file"`
		SHA256     string `json:"sha256"`
		CuesSHA256 string `json:"cues_sha256"`
		Examples   int    `json:"examples"`
	} `json:"trained_on"`
	Training TrainOptions `json:"training"`
	Cues     Cues         `json:"cues"`
	Heads    []Head       `json:"heads"`
	// Weights per feature: the weights of every head's classes, heads in
	// order, classes in each head's order.
	Weights map[string][]float64 `json:"weights,omitempty"`

	cues   cueSet
	vocab  map[string]int // feature → row
	names  []string       // row → feature
	matrix [][]float64    // row → weights
}

// Head is one label the model predicts.
type Head struct {
	Name    string    `json:"name"`
	Classes []string  `json:"classes"`
	Bias    []float64 `json:"bias"`
	offset  int
}

// Prediction is the model's verdict on one text.
type Prediction struct {
	Version  string
	Category Label
	Severity Label
	Priority Label
	Dispatch Label
	// Confidence is the lowest probability of the chosen category,
	// severity and priority.
	Confidence float64
	// Deciding are the features that weighed most for the chosen
	// category, severity and priority, strongest first.
	Deciding []string
}

// Label is a head's chosen class and its probability.
type Label struct {
	Class string
	P     float64
}

// ParseModel reads and checks a model file.
func ParseModel(doc []byte) (*Model, error) {
	var m Model
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("model: %w", err)
	}
	if err := m.compile(); err != nil {
		return nil, err
	}
	return &m, nil
}

func (m *Model) compile() error {
	if m.Version == "" {
		return fmt.Errorf("model: version: required")
	}
	if err := m.Cues.check(); err != nil {
		return fmt.Errorf("model: %w", err)
	}
	m.cues = m.Cues.compile()
	if len(m.Heads) != len(HeadNames) {
		return fmt.Errorf("model: heads: want %s", strings.Join(HeadNames, ", "))
	}
	width := 0
	for i := range m.Heads {
		h := &m.Heads[i]
		if h.Name != HeadNames[i] || !slices.Equal(h.Classes, Classes[h.Name]) {
			return fmt.Errorf("model: heads[%d]: want %s with classes %s", i, HeadNames[i], strings.Join(Classes[HeadNames[i]], ", "))
		}
		if len(h.Bias) != len(h.Classes) {
			return fmt.Errorf("model: heads[%d] (%s): bias: want %d values", i, h.Name, len(h.Classes))
		}
		h.offset = width
		width += len(h.Classes)
	}
	names := make([]string, 0, len(m.Weights))
	for f, w := range m.Weights {
		if len(w) != width {
			return fmt.Errorf("model: weights[%q]: want %d values, got %d", f, width, len(w))
		}
		names = append(names, f)
	}
	slices.Sort(names)
	m.names = names
	m.vocab = make(map[string]int, len(names))
	m.matrix = make([][]float64, len(names))
	for i, f := range names {
		m.vocab[f] = i
		m.matrix[i] = m.Weights[f]
	}
	return nil
}

// Marshal writes the model as JSON, one feature's weights a line, in
// sorted order: the same model is the same bytes, and a retrained model's
// diff is readable.
func (m *Model) Marshal() ([]byte, error) {
	head := *m
	head.Weights = nil
	doc, err := json.MarshalIndent(&head, "", "  ")
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	b.Write(doc[:len(doc)-2]) // without the closing "\n}"
	b.WriteString(",\n  \"weights\": {")
	for i, f := range slices.Sorted(maps.Keys(m.Weights)) {
		if i > 0 {
			b.WriteByte(',')
		}
		k, err := json.Marshal(f)
		if err != nil {
			return nil, err
		}
		w, err := json.Marshal(m.Weights[f])
		if err != nil {
			return nil, err
		}
		b.WriteString("\n    ")
		b.Write(k)
		b.WriteString(": ")
		b.Write(w)
	}
	b.WriteString("\n  }\n}\n")
	return b.Bytes(), nil
}

// Predict classifies a text. The same text and model give the same
// prediction.
func (m *Model) Predict(text string) Prediction {
	v := vectorise(featuresOf(text, m.cues), m.vocab)
	out := Prediction{Version: m.Version, Confidence: 1}
	contrib := map[int]float64{}
	for _, h := range m.Heads {
		scores := slices.Clone(h.Bias)
		for n, i := range v.idx {
			row := m.matrix[i][h.offset : h.offset+len(h.Classes)]
			for c := range scores {
				scores[c] += row[c] * v.val[n]
			}
		}
		probs := softmax(scores)
		best, second := top2(probs)
		l := Label{Class: h.Classes[best], P: probs[best]}
		switch h.Name {
		case HeadCategory:
			out.Category = l
		case HeadSeverity:
			out.Severity = l
		case HeadPriority:
			out.Priority = l
		case HeadDispatch:
			out.Dispatch = l
			continue // not part of the confidence nor the reasons
		}
		out.Confidence = min(out.Confidence, l.P)
		for n, i := range v.idx {
			row := m.matrix[i][h.offset:]
			contrib[i] += (row[best] - row[second]) * v.val[n]
		}
	}
	out.Deciding = m.strongest(contrib, 6)
	return out
}

// strongest are the names of the n features of largest positive weight.
func (m *Model) strongest(contrib map[int]float64, n int) []string {
	idx := make([]int, 0, len(contrib))
	for i, c := range contrib {
		if c > 0 {
			idx = append(idx, i)
		}
	}
	names := m.names
	slices.SortFunc(idx, func(a, b int) int {
		if contrib[a] != contrib[b] {
			if contrib[a] > contrib[b] {
				return -1
			}
			return 1
		}
		return strings.Compare(names[a], names[b])
	})
	out := make([]string, 0, n)
	for _, i := range idx[:min(n, len(idx))] {
		out = append(out, names[i])
	}
	return out
}

func softmax(s []float64) []float64 {
	mx := slices.Max(s)
	out := make([]float64, len(s))
	sum := 0.0
	for i, v := range s {
		out[i] = math.Exp(v - mx)
		sum += out[i]
	}
	for i := range out {
		out[i] /= sum
	}
	return out
}

// top2 are the indexes of the largest and second-largest values (the
// first on ties).
func top2(p []float64) (int, int) {
	best, second := 0, -1
	for i := 1; i < len(p); i++ {
		switch {
		case p[i] > p[best]:
			best, second = i, best
		case second < 0 || p[i] > p[second]:
			second = i
		}
	}
	if second < 0 {
		second = best
	}
	return best, second
}
