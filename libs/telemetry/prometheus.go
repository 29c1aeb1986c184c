package telemetry

import (
	"bufio"
	"fmt"
	"math"
	"net/http"
	"sort"
	"strconv"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

// PrometheusHandler serves what reader collects in the Prometheus text
// exposition format (version 0.0.4). It covers what the services record:
// sums (counters, up-down counters), gauges and explicit-bucket
// histograms; other aggregations are skipped. A small writer instead of the
// otel Prometheus exporter keeps the Prometheus client and its dependencies
// out of every service.
func PrometheusHandler(reader *sdkmetric.ManualReader) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var rm metricdata.ResourceMetrics
		if err := reader.Collect(r.Context(), &rm); err != nil {
			http.Error(w, "collect metrics: "+err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		bw := bufio.NewWriter(w)
		WritePrometheus(bw, rm)
		_ = bw.Flush()
	})
}

type family struct {
	name, typ, help string
	lines           []string
}

// WritePrometheus writes rm in the Prometheus text format, families sorted
// by name.
func WritePrometheus(w *bufio.Writer, rm metricdata.ResourceMetrics) {
	fams := map[string]*family{}
	get := func(m metricdata.Metrics, typ string) *family {
		name := promName(m.Name, m.Unit, typ == "counter")
		f, ok := fams[name]
		if !ok {
			f = &family{name: name, typ: typ, help: m.Description}
			fams[name] = f
		}
		return f
	}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				f := get(m, sumType(d.IsMonotonic))
				for _, dp := range d.DataPoints {
					f.add("", dp.Attributes, nil, float64(dp.Value))
				}
			case metricdata.Sum[float64]:
				f := get(m, sumType(d.IsMonotonic))
				for _, dp := range d.DataPoints {
					f.add("", dp.Attributes, nil, dp.Value)
				}
			case metricdata.Gauge[int64]:
				f := get(m, "gauge")
				for _, dp := range d.DataPoints {
					f.add("", dp.Attributes, nil, float64(dp.Value))
				}
			case metricdata.Gauge[float64]:
				f := get(m, "gauge")
				for _, dp := range d.DataPoints {
					f.add("", dp.Attributes, nil, dp.Value)
				}
			case metricdata.Histogram[int64]:
				f := get(m, "histogram")
				for _, dp := range d.DataPoints {
					f.histogram(dp.Attributes, dp.Bounds, dp.BucketCounts, float64(dp.Sum), dp.Count)
				}
			case metricdata.Histogram[float64]:
				f := get(m, "histogram")
				for _, dp := range d.DataPoints {
					f.histogram(dp.Attributes, dp.Bounds, dp.BucketCounts, dp.Sum, dp.Count)
				}
			}
		}
	}
	names := make([]string, 0, len(fams))
	for n := range fams {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		f := fams[n]
		if f.help != "" {
			fmt.Fprintf(w, "# HELP %s %s\n", f.name, escapeHelp(f.help))
		}
		fmt.Fprintf(w, "# TYPE %s %s\n", f.name, f.typ)
		for _, l := range f.lines {
			w.WriteString(l)
		}
	}
}

func sumType(monotonic bool) string {
	if monotonic {
		return "counter"
	}
	return "gauge"
}

func (f *family) add(suffix string, attrs attribute.Set, extra []string, v float64) {
	f.lines = append(f.lines, f.name+suffix+labels(attrs, extra)+" "+formatFloat(v)+"\n")
}

func (f *family) histogram(attrs attribute.Set, bounds []float64, counts []uint64, sum float64, count uint64) {
	var cum uint64
	for i, b := range bounds {
		if i < len(counts) {
			cum += counts[i]
		}
		f.add("_bucket", attrs, []string{"le", formatFloat(b)}, float64(cum))
	}
	f.add("_bucket", attrs, []string{"le", "+Inf"}, float64(count))
	f.add("_sum", attrs, nil, sum)
	f.add("_count", attrs, nil, float64(count))
}

// promName turns "bus.handle.duration" (unit s) into
// "bus_handle_duration_seconds", and a counter's name into "..._total".
func promName(name, unit string, counter bool) string {
	n := sanitize(name)
	if suffix, ok := map[string]string{"s": "_seconds", "ms": "_milliseconds", "By": "_bytes"}[unit]; ok && !strings.HasSuffix(n, suffix) {
		n += suffix
	}
	if counter && !strings.HasSuffix(n, "_total") {
		n += "_total"
	}
	return n
}

func sanitize(s string) string {
	var b strings.Builder
	for i, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r == '_', r == ':':
			b.WriteRune(r)
		case r >= '0' && r <= '9':
			if i == 0 {
				b.WriteRune('_')
			}
			b.WriteRune(r)
		default:
			b.WriteRune('_')
		}
	}
	return b.String()
}

func labels(attrs attribute.Set, extra []string) string {
	if attrs.Len() == 0 && len(extra) == 0 {
		return ""
	}
	var parts []string
	it := attrs.Iter()
	for it.Next() {
		kv := it.Attribute()
		parts = append(parts, sanitize(string(kv.Key))+`="`+escapeValue(kv.Value.Emit())+`"`)
	}
	for i := 0; i+1 < len(extra); i += 2 {
		parts = append(parts, extra[i]+`="`+escapeValue(extra[i+1])+`"`)
	}
	return "{" + strings.Join(parts, ",") + "}"
}

var (
	valueEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
	helpEscaper  = strings.NewReplacer(`\`, `\\`, "\n", `\n`)
)

func escapeValue(s string) string { return valueEscaper.Replace(s) }
func escapeHelp(s string) string  { return helpEscaper.Replace(s) }

func formatFloat(v float64) string {
	switch {
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	case math.IsNaN(v):
		return "NaN"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}
