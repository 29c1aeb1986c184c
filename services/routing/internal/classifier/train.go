package classifier

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
)

// TrainOptions are the trainer's settings, recorded in the model.
type TrainOptions struct {
	// Epochs over the data; Rate is AdaGrad's step, L2 the weight decay.
	Epochs int     `json:"epochs"`
	Rate   float64 `json:"rate"`
	L2     float64 `json:"l2"`
	// MinDocs: a feature is kept when at least this many examples have it
	// (one-off n-grams only memorise their example).
	MinDocs int `json:"min_docs"`
	// Seed of the order examples are visited in.
	Seed uint64 `json:"seed"`
}

// DefaultTrainOptions are the settings the shipped model is trained with.
func DefaultTrainOptions() TrainOptions {
	return TrainOptions{Epochs: 30, Rate: 0.3, L2: 1e-4, MinDocs: 2, Seed: 1}
}

// DatasetSHA256 is the hex SHA-256 of a data set file, recorded in the
// model it trains.
func DatasetSHA256(doc []byte) string {
	sum := sha256.Sum256(doc)
	return hex.EncodeToString(sum[:])
}

// VersionOf is a model's version: the base the trainer is given, and a
// digest of what it was trained from (data set, cues, options), so that a
// model retrained on other data never carries the same version.
func VersionOf(base string, data, cues []byte, opts TrainOptions) string {
	h := sha256.New()
	h.Write(data)
	h.Write([]byte{0})
	h.Write(cues)
	fmt.Fprintf(h, "\x00%+v", opts)
	return base + "+" + hex.EncodeToString(h.Sum(nil))[:8]
}

// Train fits a model to the examples. It is deterministic: the same
// examples and options give the same model, byte for byte.
func Train(examples []Example, cues Cues, opts TrainOptions, version string) *Model {
	compiled := cues.compile()
	feats := make([][]string, len(examples))
	docs := map[string]int{}
	for i, e := range examples {
		feats[i] = featuresOf(e.Text, compiled)
		for _, f := range feats[i] {
			docs[f]++
		}
	}
	var vocab []string
	for f, n := range docs {
		if n >= opts.MinDocs {
			vocab = append(vocab, f)
		}
	}
	slices.Sort(vocab)
	index := make(map[string]int, len(vocab))
	for i, f := range vocab {
		index[f] = i
	}
	vecs := make([]vector, len(examples))
	for i := range examples {
		vecs[i] = vectorise(feats[i], index)
	}

	m := &Model{Version: version, Training: opts, Cues: cues}
	m.TrainedOn.Examples = len(examples)
	width := 0
	for _, name := range HeadNames {
		width += len(Classes[name])
	}
	rows := make([][]float64, len(vocab))
	for i := range rows {
		rows[i] = make([]float64, width)
	}
	offset := 0
	for hi, name := range HeadNames {
		classes := Classes[name]
		bias := trainHead(examples, vecs, name, classes, rows, offset, opts, uint64(hi))
		m.Heads = append(m.Heads, Head{Name: name, Classes: classes, Bias: round(bias)})
		offset += len(classes)
	}
	m.Weights = map[string][]float64{}
	for i, f := range vocab {
		w := round(rows[i])
		if slices.ContainsFunc(w, func(x float64) bool { return x != 0 }) {
			m.Weights[f] = w
		}
	}
	if err := m.compile(); err != nil {
		panic(err) // a model Train made is well formed
	}
	return m
}

// trainHead fits one softmax head by AdaGrad, its classes weighted by the
// inverse of their frequency (every class counts alike, as the macro
// figures do), into rows[*][offset:offset+len(classes)]; it returns the
// biases.
func trainHead(examples []Example, vecs []vector, head string, classes []string, rows [][]float64, offset int, opts TrainOptions, stream uint64) []float64 {
	k := len(classes)
	labels := make([]int, len(examples))
	count := make([]float64, k)
	for i, e := range examples {
		labels[i] = slices.Index(classes, e.Label(head))
		count[labels[i]]++
	}
	classWeight := make([]float64, k)
	for c := range classWeight {
		if count[c] > 0 {
			classWeight[c] = float64(len(examples)) / (float64(k) * count[c])
		}
	}
	bias := make([]float64, k)
	gBias := make([]float64, k)
	acc := make([][]float64, len(rows))
	for i := range acc {
		acc[i] = make([]float64, k)
	}
	const eps = 1e-8
	rng := rand.New(rand.NewPCG(opts.Seed, stream))
	order := make([]int, len(examples))
	for i := range order {
		order[i] = i
	}
	scores := make([]float64, k)
	for epoch := 0; epoch < opts.Epochs; epoch++ {
		rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		for _, n := range order {
			v := vecs[n]
			copy(scores, bias)
			for j, i := range v.idx {
				for c := 0; c < k; c++ {
					scores[c] += rows[i][offset+c] * v.val[j]
				}
			}
			p := softmax(scores)
			for c := 0; c < k; c++ {
				y := 0.0
				if c == labels[n] {
					y = 1
				}
				g := (p[c] - y) * classWeight[labels[n]]
				gBias[c] += g * g
				bias[c] -= opts.Rate * g / math.Sqrt(gBias[c]+eps)
				for j, i := range v.idx {
					w := &rows[i][offset+c]
					gw := g*v.val[j] + opts.L2**w
					acc[i][c] += gw * gw
					*w -= opts.Rate * gw / math.Sqrt(acc[i][c]+eps)
				}
			}
		}
	}
	return bias
}

// round keeps four decimals: enough for the model, and a smaller file.
func round(w []float64) []float64 {
	out := make([]float64, len(w))
	for i, x := range w {
		out[i] = math.Round(x*1e4) / 1e4
		if out[i] == 0 {
			out[i] = 0 // no "-0" in the file
		}
	}
	return out
}
