package api

import (
	"errors"
	"net/http/httptest"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/catalog-pipeline/pipeline/engine"
	"github.com/catalog-pipeline/pipeline/store"
)

// scrape fetches /metrics and parses the text format.
func scrape(t *testing.T, rec *httptest.ResponseRecorder) map[string]*dto.MetricFamily {
	t.Helper()
	if rec.Code != 200 {
		t.Fatalf("/metrics: %d %s", rec.Code, rec.Body.String())
	}
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Fatalf("content type %q", ct)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(strings.NewReader(rec.Body.String()))
	if err != nil {
		t.Fatalf("parse metrics: %v\n%s", err, rec.Body.String())
	}
	return mfs
}

// sample is one metric of a family: its labels as "k=v,..." (sorted) and
// its value.
func samples(mf *dto.MetricFamily) map[string]float64 {
	out := map[string]float64{}
	for _, m := range mf.GetMetric() {
		var labels []string
		for _, l := range m.GetLabel() {
			labels = append(labels, l.GetName()+"="+l.GetValue())
		}
		sort.Strings(labels)
		var v float64
		switch {
		case m.Gauge != nil:
			v = m.GetGauge().GetValue()
		case m.Counter != nil:
			v = m.GetCounter().GetValue()
		case m.Untyped != nil:
			v = m.GetUntyped().GetValue()
		}
		out[strings.Join(labels, ",")] = v
	}
	return out
}

func TestMetrics(t *testing.T) {
	f := newStatusFixture(t, nil)
	f.run() // a second run, for an ETag hit
	mfs := scrape(t, f.do("GET", "/metrics", ""))

	tests := []struct {
		name  string
		typ   dto.MetricType
		check func(t *testing.T, s map[string]float64)
	}{
		{MetricEntities, dto.MetricType_GAUGE, func(t *testing.T, s map[string]float64) {
			// 2 generated root Locations, the group, orders and the
			// remote system; the invalid components are not served.
			want := map[string]float64{"kind=location": 2, "kind=group": 1, "kind=component": 1, "kind=system": 1}
			if len(s) != len(want) {
				t.Fatalf("got %v want %v", s, want)
			}
			for k, v := range want {
				if s[k] != v {
					t.Fatalf("got %v want %v", s, want)
				}
			}
		}},
		{MetricEntitiesWithError, dto.MetricType_GAUGE, func(t *testing.T, s map[string]float64) {
			if s[""] != 3 {
				t.Fatalf("got %v want 3", s)
			}
		}},
		{MetricQueueDepth, dto.MetricType_GAUGE, func(t *testing.T, s map[string]float64) {
			if v, ok := s[""]; !ok || v != 0 {
				t.Fatalf("got %v want 0 after a run", s)
			}
		}},
		{MetricStageCalls, dto.MetricType_COUNTER, func(t *testing.T, s map[string]float64) {
			if s["hook=readLocation,pipeline=status,stage=url"] != 2 || s["hook=readLocation,pipeline=status,stage=file"] == 0 ||
				s["hook=postProcessEntity,pipeline=status,stage=tagger"] == 0 || s["hook=validateEntityKind,pipeline=status,stage=builtin-kinds"] == 0 {
				t.Fatalf("got %v", s)
			}
		}},
		{MetricStageErrors, dto.MetricType_COUNTER, func(t *testing.T, s map[string]float64) {
			// Two runs: explodes fails the script twice, bad-a and bad-b
			// fail validation twice each.
			if s["hook=postProcessEntity,pipeline=status,stage=tagger"] != 2 || s["hook=validateEntityKind,pipeline=status,stage=builtin-kinds"] != 4 ||
				s["hook=readLocation,pipeline=status,stage=url"] != 0 {
				t.Fatalf("got %v", s)
			}
		}},
		{MetricStageDuration, dto.MetricType_COUNTER, func(t *testing.T, s map[string]float64) {
			if v := s["hook=readLocation,pipeline=status,stage=url"]; v <= 0 || v > 60 {
				t.Fatalf("got %v", s)
			}
		}},
		{MetricETagHits, dto.MetricType_COUNTER, func(t *testing.T, s map[string]float64) {
			if s[""] != 1 {
				t.Fatalf("got %v want 1", s)
			}
		}},
		{MetricETagMisses, dto.MetricType_COUNTER, func(t *testing.T, s map[string]float64) {
			if s[""] != 1 {
				t.Fatalf("got %v want 1", s)
			}
		}},
		{"go_goroutines", dto.MetricType_GAUGE, func(t *testing.T, s map[string]float64) {
			if s[""] <= 0 {
				t.Fatalf("got %v", s)
			}
		}},
		{"process_start_time_seconds", dto.MetricType_GAUGE, func(t *testing.T, s map[string]float64) {
			if s[""] <= 0 {
				t.Fatalf("got %v", s)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			mf, ok := mfs[tc.name]
			if !ok {
				t.Fatalf("metric %s missing", tc.name)
			}
			if mf.GetType() != tc.typ {
				t.Fatalf("type %v want %v", mf.GetType(), tc.typ)
			}
			if mf.GetHelp() == "" {
				t.Fatal("no help text")
			}
			tc.check(t, samples(mf))
		})
	}

	// The queue depth follows the store: everything is due after Refresh.
	if err := f.eng.Refresh("component:default/orders"); err != nil {
		t.Fatal(err)
	}
	mfs = scrape(t, f.do("GET", "/metrics", ""))
	if s := samples(mfs[MetricQueueDepth]); s[""] < 2 {
		t.Fatalf("queue depth after a refresh: %v", s)
	}
	if rec := f.do("HEAD", "/metrics", ""); rec.Code != 200 {
		t.Fatalf("HEAD /metrics: %d", rec.Code)
	}
	checkError(t, f.do("POST", "/metrics", ""), 405, MethodNotAllowedErrorName, "POST")
}

// TestMetricsRegistryPerHandler checks that two servers in one process do
// not collide (no global registry) and that a server without catalog or
// engine still serves the runtime metrics.
func TestMetricsRegistryPerHandler(t *testing.T) {
	for range 2 {
		h := New(Options{Logger: quiet()})
		mfs := scrape(t, serve(h, "GET", "/metrics", ""))
		if _, ok := mfs["go_goroutines"]; !ok {
			t.Fatal("no go_goroutines")
		}
		if _, ok := mfs[MetricEntities]; ok {
			t.Fatal("catalog metrics without a catalog")
		}
	}
}

// collectorCatalog is a Catalog whose metrics inputs are canned.
type collectorCatalog struct {
	panicky
	kinds      []store.FacetCount
	errs       int
	depth      int
	facetsFail error
}

func (c collectorCatalog) Facets(paths []string, _ store.Expr) (map[string][]store.FacetCount, error) {
	if c.facetsFail != nil {
		return nil, c.facetsFail
	}
	return map[string][]store.FacetCount{"kind": c.kinds}, nil
}

func (c collectorCatalog) ForEachError(fn func(*store.State) error) error {
	for i := 0; i < c.errs; i++ {
		if err := fn(&store.State{}); err != nil {
			return err
		}
	}
	return nil
}

func (c collectorCatalog) QueueDepth(time.Time) (int, error) { return c.depth, nil }

func (c collectorCatalog) StitchBacklog() (int, error) { return 11, nil }

// cannedStatus is a Status with fixed counters.
type cannedStatus struct{}

func (cannedStatus) Pipelines() []engine.PipelineInfo          { return nil }
func (cannedStatus) LocationStatuses() []engine.LocationStatus { return nil }
func (cannedStatus) HookStats() []engine.HookStat {
	return []engine.HookStat{{Pipeline: "p", Stage: "s", Hook: "readLocation", Calls: 3, Errors: 1, Total: 1500 * time.Millisecond}}
}
func (cannedStatus) ETagStats() (int64, int64) { return 7, 2 }

func TestCollector(t *testing.T) {
	cat := collectorCatalog{
		kinds: []store.FacetCount{{Value: "Component", Count: 2}, {Value: "component", Count: 1}, {Value: "API", Count: 4}},
		errs:  5, depth: 9,
	}
	c := newCollector(cat, cannedStatus{})
	want := `
# HELP catalog_entities Served entities by lowercased kind.
# TYPE catalog_entities gauge
catalog_entities{kind="api"} 4
catalog_entities{kind="component"} 3
# HELP catalog_entities_with_errors Entities whose last processing run recorded errors.
# TYPE catalog_entities_with_errors gauge
catalog_entities_with_errors 5
# HELP pipeline_etag_hits_total Upstream reads answered 304 Not Modified since the process started.
# TYPE pipeline_etag_hits_total counter
pipeline_etag_hits_total 7
# HELP pipeline_etag_misses_total Upstream reads not answered 304 since the process started.
# TYPE pipeline_etag_misses_total counter
pipeline_etag_misses_total 2
# HELP pipeline_queue_depth Entities due for processing now (the backlog of the ingestion loop).
# TYPE pipeline_queue_depth gauge
pipeline_queue_depth 9
# HELP pipeline_stitch_backlog Processed entities whose served form is not rebuilt yet (how far the API is behind).
# TYPE pipeline_stitch_backlog gauge
pipeline_stitch_backlog 11
# HELP pipeline_stage_calls_total Calls of a stage hook since the process started.
# TYPE pipeline_stage_calls_total counter
pipeline_stage_calls_total{hook="readLocation",pipeline="p",stage="s"} 3
# HELP pipeline_stage_duration_seconds_total Time spent in a stage hook since the process started.
# TYPE pipeline_stage_duration_seconds_total counter
pipeline_stage_duration_seconds_total{hook="readLocation",pipeline="p",stage="s"} 1.5
# HELP pipeline_stage_errors_total Calls of a stage hook that failed since the process started.
# TYPE pipeline_stage_errors_total counter
pipeline_stage_errors_total{hook="readLocation",pipeline="p",stage="s"} 1
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want)); err != nil {
		t.Fatal(err)
	}
	// The collector is consistent with its descriptors.
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	if _, err := reg.Gather(); err != nil {
		t.Fatal(err)
	}

	// A store failure is reported and the other metrics are still served.
	cat.facetsFail = errors.New("disk on fire")
	h := newMetricsHandler(cat, cannedStatus{}, quiet())
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), "pipeline_queue_depth 9") ||
		strings.Contains(rec.Body.String(), "catalog_entities{") {
		t.Fatalf("%d %s", rec.Code, rec.Body.String())
	}
	names := []string{MetricEntities, MetricEntitiesWithError, MetricStageCalls, MetricStageErrors, MetricStageDuration, MetricQueueDepth, MetricStitchBacklog, MetricETagHits, MetricETagMisses}
	if slices.Contains(names, "") {
		t.Fatal("empty metric name")
	}
}
