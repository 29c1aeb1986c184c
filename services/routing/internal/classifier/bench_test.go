package classifier

import (
	"os"
	"testing"
)

// BenchmarkPredict: one complaint classified by the shipped model.
func BenchmarkPredict(b *testing.B) {
	doc, err := os.ReadFile("../../policy/classifier.v1.json")
	if err != nil {
		b.Fatal(err)
	}
	m, err := ParseModel(doc)
	if err != nil {
		b.Fatal(err)
	}
	text := "昨天晚上十一点多，卧室的空调突然啪的一声，接着就闻到焦味 and the indoor unit was smoking"
	b.ReportAllocs()
	for b.Loop() {
		m.Predict(text)
	}
}
