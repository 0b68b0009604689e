package api

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/catalog-pipeline/pipeline/store"
)

// Metric names served at /metrics, besides the standard go_* and
// process_* collectors.
const (
	MetricEntities          = "catalog_entities"
	MetricEntitiesWithError = "catalog_entities_with_errors"
	MetricStageCalls        = "pipeline_stage_calls_total"
	MetricStageErrors       = "pipeline_stage_errors_total"
	MetricStageDuration     = "pipeline_stage_duration_seconds_total"
	MetricQueueDepth        = "pipeline_queue_depth"
	MetricStitchBacklog     = "pipeline_stitch_backlog"
	MetricETagHits          = "pipeline_etag_hits_total"
	MetricETagMisses        = "pipeline_etag_misses_total"
)

// errorCounter is what a store may offer to count the entities with
// errors without walking them; without it the collector walks
// ForEachError.
type errorCounter interface {
	ErrorCount() (int, error)
}

// stitchCounter is what a store with deferred stitching offers: the
// number of entities whose served form is not rebuilt yet.
type stitchCounter interface {
	StitchBacklog() (int, error)
}

// collector is the prometheus.Collector of the catalog and the engine: it
// reads the store and the engine's counters at scrape time, so nothing is
// kept twice.
type collector struct {
	cat Catalog
	st  Status
	now func() time.Time

	entities, withErrors, queueDepth       *prometheus.Desc
	stitchBacklog                          *prometheus.Desc
	stageCalls, stageErrors, stageDuration *prometheus.Desc
	etagHits, etagMisses                   *prometheus.Desc
}

// newCollector builds the collector; cat or st may be nil, and their
// metrics are then left out.
func newCollector(cat Catalog, st Status) *collector {
	hook := []string{"pipeline", "stage", "hook"}
	return &collector{
		cat: cat, st: st, now: time.Now,
		entities:      prometheus.NewDesc(MetricEntities, "Served entities by lowercased kind.", []string{"kind"}, nil),
		withErrors:    prometheus.NewDesc(MetricEntitiesWithError, "Entities whose last processing run recorded errors.", nil, nil),
		queueDepth:    prometheus.NewDesc(MetricQueueDepth, "Entities due for processing now (the backlog of the ingestion loop).", nil, nil),
		stitchBacklog: prometheus.NewDesc(MetricStitchBacklog, "Processed entities whose served form is not rebuilt yet (how far the API is behind).", nil, nil),
		stageCalls:    prometheus.NewDesc(MetricStageCalls, "Calls of a stage hook since the process started.", hook, nil),
		stageErrors:   prometheus.NewDesc(MetricStageErrors, "Calls of a stage hook that failed since the process started.", hook, nil),
		stageDuration: prometheus.NewDesc(MetricStageDuration, "Time spent in a stage hook since the process started.", hook, nil),
		etagHits:      prometheus.NewDesc(MetricETagHits, "Upstream reads answered 304 Not Modified since the process started.", nil, nil),
		etagMisses:    prometheus.NewDesc(MetricETagMisses, "Upstream reads not answered 304 since the process started.", nil, nil),
	}
}

// Describe sends the descriptors of every metric the collector may send.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.entities, c.withErrors, c.queueDepth, c.stitchBacklog, c.stageCalls, c.stageErrors, c.stageDuration, c.etagHits, c.etagMisses} {
		ch <- d
	}
}

// Collect reads the store and the engine's counters. A store failure
// sends an invalid metric, which the handler reports while still serving
// the other metrics.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	if c.cat != nil {
		c.collectCatalog(ch)
	}
	if c.st != nil {
		for _, h := range c.st.HookStats() {
			ch <- prometheus.MustNewConstMetric(c.stageCalls, prometheus.CounterValue, float64(h.Calls), h.Pipeline, h.Stage, h.Hook)
			ch <- prometheus.MustNewConstMetric(c.stageErrors, prometheus.CounterValue, float64(h.Errors), h.Pipeline, h.Stage, h.Hook)
			ch <- prometheus.MustNewConstMetric(c.stageDuration, prometheus.CounterValue, h.Total.Seconds(), h.Pipeline, h.Stage, h.Hook)
		}
		hits, misses := c.st.ETagStats()
		ch <- prometheus.MustNewConstMetric(c.etagHits, prometheus.CounterValue, float64(hits))
		ch <- prometheus.MustNewConstMetric(c.etagMisses, prometheus.CounterValue, float64(misses))
	}
}

func (c *collector) collectCatalog(ch chan<- prometheus.Metric) {
	// Facets are answered from the kind index: O(distinct kinds).
	facets, err := c.cat.Facets([]string{"kind"}, nil)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.entities, fmt.Errorf("count entities by kind: %w", err))
	} else {
		// Facet values keep their original case; kinds are
		// case-insensitive, so "Component" and "component" add up.
		byKind := map[string]int{}
		for _, f := range facets["kind"] {
			byKind[strings.ToLower(f.Value)] += f.Count
		}
		for kind, n := range byKind {
			ch <- prometheus.MustNewConstMetric(c.entities, prometheus.GaugeValue, float64(n), kind)
		}
	}
	if n, err := c.cat.QueueDepth(c.now()); err != nil {
		ch <- prometheus.NewInvalidMetric(c.queueDepth, fmt.Errorf("queue depth: %w", err))
	} else {
		ch <- prometheus.MustNewConstMetric(c.queueDepth, prometheus.GaugeValue, float64(n))
	}
	if sc, ok := c.cat.(stitchCounter); ok {
		if n, err := sc.StitchBacklog(); err != nil {
			ch <- prometheus.NewInvalidMetric(c.stitchBacklog, fmt.Errorf("stitch backlog: %w", err))
		} else {
			ch <- prometheus.MustNewConstMetric(c.stitchBacklog, prometheus.GaugeValue, float64(n))
		}
	}
	if n, err := countErrors(c.cat); err != nil {
		ch <- prometheus.NewInvalidMetric(c.withErrors, fmt.Errorf("count entities with errors: %w", err))
	} else {
		ch <- prometheus.MustNewConstMetric(c.withErrors, prometheus.GaugeValue, float64(n))
	}
}

// countErrors counts the entities with errors, cheaply when the store can.
func countErrors(cat Catalog) (int, error) {
	if ec, ok := cat.(errorCounter); ok {
		return ec.ErrorCount()
	}
	n := 0
	err := cat.ForEachError(func(*store.State) error { n++; return nil })
	return n, err
}

// promLogger adapts slog to promhttp's error log.
type promLogger struct{ log *slog.Logger }

// Println logs a metrics gathering error.
func (l promLogger) Println(v ...any) {
	l.log.Warn("gathering metrics", "error", strings.TrimSpace(fmt.Sprintln(v...)))
}

// newMetricsHandler builds /metrics on a registry of its own (never the
// global one, so that several servers in one process do not collide):
// the catalog and engine collector plus the Go runtime and process
// collectors.
func newMetricsHandler(cat Catalog, st Status, log *slog.Logger) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		newCollector(cat, st),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog:      promLogger{log},
		ErrorHandling: promhttp.ContinueOnError,
		Registry:      reg,
	})
}

// getMetrics serves GET /metrics in the Prometheus text format.
func (s *server) getMetrics(w http.ResponseWriter, r *http.Request) error {
	if s.metrics == nil {
		return errors.New("metrics are not set up")
	}
	s.metrics.ServeHTTP(w, r)
	return nil
}
