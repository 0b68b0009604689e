package e2e_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/catalog-pipeline/pipeline/builtin"
	"github.com/catalog-pipeline/pipeline/engine"
	"github.com/catalog-pipeline/pipeline/engine/config"
	"github.com/catalog-pipeline/pipeline/internal/systemx"
	"github.com/catalog-pipeline/pipeline/scripting"
	"github.com/catalog-pipeline/pipeline/store"
)

// repoRoot is the module root, where scripts/, pipelines/ and testdata/
// live; tests run in internal/systemx/e2e.
var repoRoot = func() string {
	abs, err := filepath.Abs(filepath.Join("..", "..", ".."))
	if err != nil {
		panic(err)
	}
	return abs
}()

// specs are the stage types a pipeline file may use, as cmd/pipeline
// registers them once scripting is wired in.
func specs() []engine.StageSpec {
	return append(builtin.Specs(), scripting.Spec)
}

// syncBuffer collects log output written from the engine's workers.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// setup says how a harness builds its pipeline.
type setup struct {
	// timeout is the stage timeout; "1s" when empty.
	timeout string
	// config is the HCL object given to the script; { tierLabel = true }
	// when empty.
	config string
	// path is appended to the server URL to form the location target.
	path     string
	optional bool
}

// harness is one System-X pipeline against one fake server and one store,
// run as many times as a test needs with the same engine.
type harness struct {
	t      *testing.T
	srv    *systemx.Server
	db     *store.DB
	eng    *engine.Engine
	target string
	locRef string
	logs   *syncBuffer
}

func newHarness(t *testing.T, s setup) *harness {
	t.Helper()
	if s.timeout == "" {
		s.timeout = "1s"
	}
	if s.config == "" {
		s.config = "{ tierLabel = true }"
	}
	srv := systemx.New(systemx.DefaultRecords())
	t.Cleanup(srv.Close)
	target := srv.URL() + s.path

	dir := t.TempDir()
	hcl := fmt.Sprintf(`pipeline "system-x" {
  allow_hosts = ["127.0.0.1"]
  location "system-x" {
    target   = %q
    optional = %t
  }
  stage "placeholders" {}
  stage "builtin-kinds" {}
  stage "annotate-location" {}
  stage "system-x" {
    script  = %q
    timeout = %q
    config  = %s
  }
}
`, target, s.optional, filepath.Join(repoRoot, "scripts", "system-x.js"), s.timeout, s.config)
	file := filepath.Join(dir, "system-x.hcl")
	if err := os.WriteFile(file, []byte(hcl), 0o644); err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	cfg, err := config.LoadFiles([]string{file}, config.Options{Specs: specs(), Logger: log})
	if err != nil {
		t.Fatalf("load %s:\n%s\n%v", file, hcl, err)
	}
	h := &harness{t: t, srv: srv, target: target, logs: logs,
		locRef: engine.LocationEntity(engine.Location{Type: "system-x", Target: target}, false).Ref().String()}
	h.db = openStore(t, dir)
	h.eng = engine.New(cfg, h.db, log)
	return h
}

func openStore(t *testing.T, dir string) *store.DB {
	t.Helper()
	db, err := store.Open(filepath.Join(dir, "catalog.db"), store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func (h *harness) run() engine.RunStats {
	h.t.Helper()
	st, err := h.eng.RunOnce(context.Background())
	if err != nil {
		h.t.Fatal(err)
	}
	return st
}

func (h *harness) final(ref string) map[string]any { h.t.Helper(); return final(h.t, h.db, ref) }

// final is the served entity ref, nil when it is not served.
func final(t *testing.T, db *store.DB, ref string) map[string]any {
	t.Helper()
	body, _, err := db.Final(ref)
	if err != nil {
		t.Fatal(err)
	}
	if body == nil {
		return nil
	}
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// served lists the refs of every served entity, sorted.
func served(t *testing.T, db *store.DB) []string {
	t.Helper()
	var refs []string
	if err := db.ForEachFinal("", func(ref string, _ []byte) error {
		refs = append(refs, ref)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return refs
}

// etags maps every served ref to its etag, to show what changed.
func etags(t *testing.T, db *store.DB) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, ref := range served(t, db) {
		_, etag, err := db.Final(ref)
		if err != nil {
			t.Fatal(err)
		}
		out[ref] = etag
	}
	return out
}

func field(m map[string]any, path ...string) any {
	var v any = m
	for _, p := range path {
		mm, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = mm[p]
	}
	return v
}

func relations(m map[string]any) []string {
	var out []string
	rs, _ := m["relations"].([]any)
	for _, r := range rs {
		rm := r.(map[string]any)
		out = append(out, fmt.Sprint(rm["type"], " ", rm["targetRef"]))
	}
	slices.Sort(out)
	return out
}

func statusMessages(m map[string]any) []string {
	var out []string
	items, _ := field(m, "status", "items").([]any)
	for _, it := range items {
		out = append(out, it.(map[string]any)["message"].(string))
	}
	return out
}

// defaultRefs are the entities DefaultRecords yields, with the root
// Location entity.
func defaultRefs(locRef string) []string {
	refs := []string{
		"api:default/inventory-api", "api:default/orders-api", "api:default/payment-events", "api:default/payments-api",
		"component:default/inventory", "component:default/orders", "component:default/payments-gateway",
		"component:default/shipping-labels", "component:default/storefront", "component:default/ui-kit",
		"group:default/boosters", "group:default/ground-control", "group:default/rockets",
		locRef,
	}
	slices.Sort(refs)
	return refs
}

func TestFirstRunStoresEntities(t *testing.T) {
	h := newHarness(t, setup{})
	st := h.run()
	want := defaultRefs(h.locRef)
	if got := served(t, h.db); !slices.Equal(got, want) {
		t.Fatalf("served:\n%v\nwant:\n%v", got, want)
	}
	if st.Created != len(want) || st.Failed != 0 || st.WithErrors != 0 {
		t.Errorf("stats %+v, want %d created and no errors", st, len(want))
	}
	if h.srv.Requests() != 1 || h.srv.LastIfNoneMatch() != "" {
		t.Errorf("requests %d, If-None-Match %q: want one request without an ETag", h.srv.Requests(), h.srv.LastIfNoneMatch())
	}

	orders := h.final("component:default/orders")
	for _, c := range []struct {
		path []string
		want any
	}{
		{[]string{"metadata", "title"}, "Orders"},
		{[]string{"metadata", "description"}, "Takes, prices and tracks customer orders."},
		{[]string{"metadata", "annotations", "system-x.example/id"}, "svc-001"},
		{[]string{"metadata", "annotations", "backstage.io/source-location"}, "url:https://git.example/rockets/orders/"},
		{[]string{"metadata", "annotations", "backstage.io/managed-by-location"}, "system-x:" + h.target},
		{[]string{"metadata", "labels", "system-x.example/tier"}, "gold"},
		{[]string{"spec", "type"}, "service"},
		{[]string{"spec", "lifecycle"}, "production"},
		{[]string{"spec", "owner"}, "group:rockets"},
	} {
		if got := field(orders, c.path...); got != c.want {
			t.Errorf("orders %s = %v, want %v", strings.Join(c.path, "."), got, c.want)
		}
	}
	if got := fmt.Sprint(field(orders, "metadata", "tags")); got != "[go grpc]" {
		t.Errorf("orders tags = %s", got)
	}
	if got := fmt.Sprint(field(orders, "spec", "dependsOn")); got != "[component:inventory component:payments-gateway]" {
		t.Errorf("orders dependsOn = %s", got)
	}
	// The builtin-kinds stage turns the spec into relations.
	wantRels := []string{
		"dependencyOf component:default/shipping-labels",
		"dependencyOf component:default/storefront",
		"dependsOn component:default/inventory",
		"dependsOn component:default/payments-gateway",
		"ownedBy group:default/rockets",
		"providesApi api:default/orders-api",
	}
	if got := relations(orders); !slices.Equal(got, wantRels) {
		t.Errorf("orders relations:\n%v\nwant:\n%v", got, wantRels)
	}
	if got := field(h.final("component:default/ui-kit"), "spec", "type"); got != "library" {
		t.Errorf("ui-kit type = %v", got)
	}
	if got := field(h.final("component:default/storefront"), "spec", "type"); got != "website" {
		t.Errorf("storefront type = %v", got)
	}

	api := h.final("api:default/orders-api")
	if got := field(api, "spec", "definition"); got != systemx.DefaultRecords().Services[0].APIs[0].Spec {
		t.Errorf("orders-api definition = %v", got)
	}
	if field(api, "spec", "type") != "openapi" || field(api, "spec", "owner") != "group:rockets" || field(api, "spec", "lifecycle") != "production" {
		t.Errorf("orders-api spec = %v", api["spec"])
	}
	if got := relations(api); !slices.Equal(got, []string{"apiProvidedBy component:default/orders", "ownedBy group:default/rockets"}) {
		t.Errorf("orders-api relations = %v", got)
	}

	rockets := h.final("group:default/rockets")
	if field(rockets, "spec", "type") != "team" || field(rockets, "metadata", "title") != "Rockets" {
		t.Errorf("rockets = %v", rockets)
	}
	if got := relations(rockets); !slices.Contains(got, "ownerOf component:default/orders") || !slices.Contains(got, "ownerOf api:default/orders-api") {
		t.Errorf("rockets relations = %v", got)
	}

	// The location holds the ETag cache and the refresh key.
	loc, err := h.db.State(h.locRef)
	if err != nil || loc == nil {
		t.Fatal(loc, err)
	}
	// The cache is {stage: {target: {key: value}}}, readLocation's scope.
	var cache map[string]map[string]map[string]struct {
		ETag     string `json:"etag"`
		Entities []any  `json:"entities"`
	}
	if err := json.Unmarshal(loc.Cache, &cache); err != nil {
		t.Fatal(err)
	}
	item := cache["system-x"][h.target]["v1"]
	if item.ETag != h.srv.ETag() || len(item.Entities) != len(want)-1 {
		t.Errorf("cache item: etag %s with %d entities, want %s with %d", item.ETag, len(item.Entities), h.srv.ETag(), len(want)-1)
	}
	if !slices.Contains(loc.RefreshKeys, "system-x:"+h.target) {
		t.Errorf("refresh keys = %v", loc.RefreshKeys)
	}
	if msgs := statusMessages(h.final(h.locRef)); len(msgs) != 0 {
		t.Errorf("location errors: %v", msgs)
	}
}

func TestSecondRunIsNotModifiedAndWritesNothing(t *testing.T) {
	h := newHarness(t, setup{})
	h.run()
	before := etags(t, h.db)

	st := h.run()
	if got := h.srv.LastIfNoneMatch(); got != h.srv.ETag() {
		t.Errorf("If-None-Match %q, want the ETag %q", got, h.srv.ETag())
	}
	if h.srv.NotModified() != 1 || h.srv.Requests() != 2 {
		t.Errorf("notModified %d requests %d, want 1 and 2", h.srv.NotModified(), h.srv.Requests())
	}
	if st.Written != 0 || st.Stitched != 0 || st.Created != 0 || st.Deleted != 0 || st.Unchanged != len(before) {
		t.Errorf("second run %+v: want nothing written and %d unchanged", st, len(before))
	}
	if after := etags(t, h.db); !mapsEqual(before, after) {
		t.Errorf("served entities changed:\nbefore %v\nafter  %v", before, after)
	}

	// The cache carried over: the third run is a 304 too.
	st = h.run()
	if h.srv.NotModified() != 2 || st.Written != 0 {
		t.Errorf("third run: notModified %d written %d, want 2 and 0", h.srv.NotModified(), st.Written)
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func TestUpstreamChangeUpdatesCatalog(t *testing.T) {
	h := newHarness(t, setup{})
	h.run()
	oldETag := h.srv.ETag()

	recs := systemx.DefaultRecords()
	// shipping-labels is retired; payments-gateway drops its events API;
	// orders gets a new description; returns is new.
	recs.Services = slices.DeleteFunc(recs.Services, func(s systemx.Service) bool { return s.Name == "shipping-labels" })
	recs.Services[1].APIs = recs.Services[1].APIs[:1]
	recs.Services[0].Description = "Takes and tracks orders, now with returns."
	recs.Services = append(recs.Services, systemx.Service{
		ID: "svc-007", Name: "returns", DisplayName: "Returns", Team: "rockets", Tier: "silver",
		Lifecycle: "experimental", Kind: "service", DependsOn: []string{"svc-001"},
	})
	h.srv.Set(recs)

	st := h.run()
	if h.srv.LastIfNoneMatch() != oldETag || h.srv.NotModified() != 0 {
		t.Errorf("If-None-Match %q notModified %d: want the old ETag sent and a 200", h.srv.LastIfNoneMatch(), h.srv.NotModified())
	}
	if st.Created != 1 || st.Deleted != 2 {
		t.Errorf("created %d deleted %d, want 1 and 2 (%+v)", st.Created, st.Deleted, st)
	}
	for _, gone := range []string{"component:default/shipping-labels", "api:default/payment-events"} {
		if h.final(gone) != nil {
			t.Errorf("%s is still served", gone)
		}
	}
	returns := h.final("component:default/returns")
	if returns == nil {
		t.Fatal("the new service is not served")
	}
	if got := relations(returns); !slices.Equal(got, []string{"dependsOn component:default/orders", "ownedBy group:default/rockets"}) {
		t.Errorf("returns relations = %v", got)
	}
	if got := field(returns, "metadata", "annotations", "backstage.io/source-location"); got != nil {
		t.Errorf("source-location without a repo = %v", got)
	}
	orders := h.final("component:default/orders")
	if got := field(orders, "metadata", "description"); got != "Takes and tracks orders, now with returns." {
		t.Errorf("orders description = %v", got)
	}
	if got := relations(orders); slices.Contains(got, "dependencyOf component:default/shipping-labels") || !slices.Contains(got, "dependencyOf component:default/returns") {
		t.Errorf("orders relations = %v", got)
	}

	// The new ETag is cached: the next run is a 304 again.
	if st := h.run(); h.srv.LastIfNoneMatch() != h.srv.ETag() || h.srv.NotModified() != 1 || st.Written != 0 {
		t.Errorf("run after the change: If-None-Match %q notModified %d written %d", h.srv.LastIfNoneMatch(), h.srv.NotModified(), st.Written)
	}
}

// keepsLastGood runs once cleanly, breaks the server with breakIt, runs
// again and checks that the error is on the location and that everything
// is still served unchanged; then it repairs the server and checks that the
// error clears. It returns the location's error message.
func keepsLastGood(t *testing.T, h *harness, breakIt, repair func()) string {
	t.Helper()
	h.run()
	before := etags(t, h.db)

	breakIt()
	st := h.run()
	if st.Failed != 1 || st.Deleted != 0 {
		t.Errorf("failing run: failed %d deleted %d, want 1 and 0 (%+v)", st.Failed, st.Deleted, st)
	}
	loc := h.final(h.locRef)
	msgs := statusMessages(loc)
	if len(msgs) != 1 {
		t.Fatalf("location status = %v, want one error", msgs)
	}
	t.Logf("location error: %s", msgs[0])
	if !strings.Contains(msgs[0], `stage "system-x" failed in readLocation system-x:`+h.target) {
		t.Errorf("error does not name the stage and location: %s", msgs[0])
	}
	if !strings.Contains(msgs[0], "system-x.js") {
		t.Errorf("error does not name the script: %s", msgs[0])
	}
	// Everything else is served as it was; only the location changed.
	after := etags(t, h.db)
	if len(after) != len(before) {
		t.Errorf("served %d entities after the failure, %d before", len(after), len(before))
	}
	for ref, etag := range before {
		if ref != h.locRef && after[ref] != etag {
			t.Errorf("%s changed although the read failed", ref)
		}
	}

	repair()
	h.run()
	if msgs := statusMessages(h.final(h.locRef)); len(msgs) != 0 {
		t.Errorf("location status after recovery = %v", msgs)
	}
	// The failed run wrote no cache, so the good ETag is still there and
	// the recovery is a 304.
	if h.srv.NotModified() != 1 || h.srv.LastIfNoneMatch() != h.srv.ETag() {
		t.Errorf("recovery: notModified %d If-None-Match %q, want a 304 for %s", h.srv.NotModified(), h.srv.LastIfNoneMatch(), h.srv.ETag())
	}
	if got := served(t, h.db); !slices.Equal(got, defaultRefs(h.locRef)) {
		t.Errorf("served after recovery: %v", got)
	}
	return msgs[0]
}

func TestServerErrorKeepsLastGood(t *testing.T) {
	h := newHarness(t, setup{})
	msg := keepsLastGood(t, h, func() { h.srv.Fail(500) }, func() { h.srv.Fail(0) })
	if !strings.Contains(msg, "status 500") || !strings.Contains(msg, "injected failure") {
		t.Errorf("error does not carry the upstream's answer: %s", msg)
	}
}

func TestTimeoutKeepsLastGood(t *testing.T) {
	h := newHarness(t, setup{timeout: "1s"})
	msg := keepsLastGood(t, h, func() { h.srv.Hang(10 * time.Second) }, func() { h.srv.Hang(0) })
	if !strings.Contains(msg, "timeout") && !strings.Contains(msg, "timed out") {
		t.Errorf("error does not say the stage timed out: %s", msg)
	}
}

func TestTimeoutIsBoundedByTheStageTimeout(t *testing.T) {
	h := newHarness(t, setup{timeout: "1s"})
	h.run()
	h.srv.Hang(30 * time.Second)
	start := time.Now()
	h.run()
	// The run waits for the stage timeout, not for the server: a hanging
	// upstream holds a worker for the timeout at most.
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("the run took %v although the stage timeout is 1s", d)
	}
	if msgs := statusMessages(h.final(h.locRef)); len(msgs) != 1 {
		t.Errorf("location status = %v", msgs)
	}
}

func TestGarbageKeepsLastGood(t *testing.T) {
	h := newHarness(t, setup{})
	msg := keepsLastGood(t, h, func() { h.srv.Garbage(true) }, func() { h.srv.Garbage(false) })
	if !strings.Contains(msg, "not JSON") {
		t.Errorf("error does not say the answer was not JSON: %s", msg)
	}
}

func TestNotFound(t *testing.T) {
	// A base URL under which System-X has no API: a 404.
	h := newHarness(t, setup{path: "/no-such-prefix"})
	st := h.run()
	if st.Failed != 0 {
		t.Errorf("a missing source failed the run: %+v", st)
	}
	msgs := statusMessages(h.final(h.locRef))
	if len(msgs) != 1 || !strings.HasPrefix(msgs[0], "NotFoundError: ") || !strings.Contains(msgs[0], "does not exist") {
		t.Errorf("location status = %v, want a not-found error", msgs)
	}
	if got := served(t, h.db); len(got) != 1 {
		t.Errorf("served %v, want only the location", got)
	}

	// An optional location that is missing is no error at all.
	h = newHarness(t, setup{path: "/no-such-prefix", optional: true})
	h.run()
	if msgs := statusMessages(h.final(h.locRef)); len(msgs) != 0 {
		t.Errorf("optional location status = %v", msgs)
	}
}

func TestConfig(t *testing.T) {
	// Without tierLabel no label; with teams = false no groups.
	h := newHarness(t, setup{config: "{ teams = false }"})
	h.run()
	if got := field(h.final("component:default/orders"), "metadata", "labels"); got != nil {
		t.Errorf("labels without tierLabel = %v", got)
	}
	for _, ref := range served(t, h.db) {
		if strings.HasPrefix(ref, "group:") {
			t.Errorf("%s emitted with teams = false", ref)
		}
	}
	// The owner relation still points at the group, wherever it comes from.
	if got := relations(h.final("component:default/orders")); !slices.Contains(got, "ownedBy group:default/rockets") {
		t.Errorf("orders relations = %v", got)
	}
}

func TestSloppyRecords(t *testing.T) {
	h := newHarness(t, setup{})
	recs := systemx.DefaultRecords()
	recs.Services[0].Tags = []string{"Go", "Spring Boot", "  ", "go", "c++"}
	recs.Services[2].DependsOn = append(recs.Services[2].DependsOn, "svc-404")
	h.srv.Set(recs)
	h.run()
	if got := fmt.Sprint(field(h.final("component:default/orders"), "metadata", "tags")); got != "[go spring-boot c++]" {
		t.Errorf("normalized tags = %s", got)
	}
	storefront := h.final("component:default/storefront")
	if got := fmt.Sprint(field(storefront, "spec", "dependsOn")); got != "[component:orders component:ui-kit]" {
		t.Errorf("storefront dependsOn = %s", got)
	}
	if !strings.Contains(h.logs.String(), "depends on unknown service svc-404") {
		t.Errorf("no warning about the unknown dependency; log:\n%s", h.logs.String())
	}
}

func TestOfflineExamplePipeline(t *testing.T) {
	file := filepath.Join(repoRoot, "pipelines", "system-x.hcl")
	log := slog.New(slog.DiscardHandler)
	cfg, err := config.LoadFiles([]string{file}, config.Options{Specs: specs(), Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	db := openStore(t, t.TempDir())
	eng := engine.New(cfg, db, log)
	st, err := eng.RunOnce(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.Failed != 0 || st.WithErrors != 0 {
		t.Errorf("stats %+v", st)
	}
	var kinds []string
	for _, ref := range served(t, db) {
		kinds = append(kinds, ref[:strings.IndexByte(ref, ':')])
	}
	counts := map[string]int{}
	for _, k := range kinds {
		counts[k]++
	}
	if counts["component"] != 6 || counts["api"] != 3 || counts["group"] != 1 || counts["location"] != 1 {
		t.Errorf("served %v", served(t, db))
	}
	pm := final(t, db, "component:default/payload-manifest")
	if got := fmt.Sprint(field(pm, "metadata", "tags")); got != "[java spring-boot]" {
		t.Errorf("payload-manifest tags = %s", got)
	}
	if got := field(pm, "metadata", "labels", "system-x.example/tier"); got != "gold" {
		t.Errorf("payload-manifest tier label = %v", got)
	}
	if got := relations(pm); !slices.Equal(got, []string{
		"dependsOn component:default/invoice-pdf", "ownedBy group:default/payments", "providesApi api:default/payload-manifest-api",
	}) {
		t.Errorf("payload-manifest relations = %v", got)
	}
	// A file has no ETag: every run reads it again, and an unchanged file
	// still writes nothing.
	st, err = eng.RunOnce(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.Written != 0 {
		t.Errorf("second offline run wrote %d entities", st.Written)
	}
}

// TestMakeRunConfiguration loads the whole pipelines/ folder, as `make run`
// does: the System-X example lands next to the example catalog without a
// conflict, and its relations reach the example catalog's groups.
func TestMakeRunConfiguration(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	cfg, err := config.Load(filepath.Join(repoRoot, "pipelines"), config.Options{Specs: specs(), Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	db := openStore(t, t.TempDir())
	st, err := engine.New(cfg, db, log).RunOnce(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Conflicts) != 0 {
		t.Errorf("conflicts: %+v", st.Conflicts)
	}
	sxLoc := engine.LocationEntity(engine.Location{Type: "system-x", Target: "../testdata/system-x/services.json"}, false).Ref().String()
	if msgs := statusMessages(final(t, db, sxLoc)); len(msgs) != 0 {
		t.Errorf("system-x location status = %v", msgs)
	}
	payments := final(t, db, "group:default/payments")
	if payments == nil {
		t.Fatal("the example catalog's payments group is not served")
	}
	if got := relations(payments); !slices.Contains(got, "ownerOf component:default/payload-manifest") || !slices.Contains(got, "ownerOf component:default/invoice-pdf") {
		t.Errorf("payments relations = %v", got)
	}
	if final(t, db, "group:default/ground-stations") == nil {
		t.Error("the System-X-only team is not served")
	}
}
