package main

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// crashSeedEnv replays a crash test with the seed it logged.
const crashSeedEnv = "PIPELINE_CRASH_SEED"

// buildCLI builds the pipeline command into a temporary folder with the go
// command on PATH: the crash test's children are plain (non-race) builds,
// as in production, whatever flags the tests run with.
func buildCLI(t *testing.T) cli {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("no go command to build pipeline with: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "pipeline")
	cmd := exec.Command(goTool, "build", "-o", bin, "github.com/catalog-pipeline/pipeline/cmd/pipeline")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return cli{path: bin}
}

// TestCrashRecovery kills `pipeline serve` with SIGKILL at random moments
// while it ingests a generated catalog, restarting it each time, and checks
// that the catalog it finally serves equals an uninterrupted run's: same
// refs, and for each entity the same relations, annotations and body
// (metadata.uid and metadata.etag aside).
func TestCrashRecovery(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the command and ingests a generated catalog several times")
	}
	start := time.Now()
	bin := buildCLI(t)
	dir := t.TempDir()
	catDir := filepath.Join(dir, "catalog")
	bin.mustRun(t, dir, "generate", "--out", catDir, "--count", "3000", "--seed", "7")

	// (a) The reference: one uninterrupted run.
	refDB := filepath.Join(dir, "ref.db")
	sum := bin.mustRun(t, dir, "run", "--once", "--config", catDir, "--db", refDB, "--log-level", "warn")
	ref := exportEntities(t, bin, dir, refDB)
	m := regexp.MustCompile(`processed \d+ entities in (\S+) `).FindStringSubmatch(sum)
	if m == nil {
		t.Fatalf("run --once printed no duration:\n%s", sum)
	}
	ingest, err := time.ParseDuration(m[1])
	if err != nil {
		t.Fatalf("run --once duration %q: %v", m[1], err)
	}
	if len(ref) < 3000 {
		t.Fatalf("the reference run serves %d entities, want at least 3000", len(ref))
	}

	// (b) Serve, killed with SIGKILL at random moments and restarted.
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv(crashSeedEnv); s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatalf("%s=%q: %v", crashSeedEnv, s, err)
		}
	}
	// Kill moments are drawn from a window that scales with how fast this
	// machine ingests the catalog, so that most kills land in the middle of
	// the ingest (each restart first redoes the batch its predecessor lost).
	window := max(ingest*6/10, 100*time.Millisecond)
	t.Logf("uninterrupted ingest took %v; kill moments drawn from [50ms, %v) with seed %d (replay with %s=%d)",
		ingest, (50*time.Millisecond + window).Round(time.Millisecond), seed, crashSeedEnv, seed)
	rnd := rand.New(rand.NewPCG(seed, 0xc0ffee))
	crashDB := filepath.Join(dir, "crash.db")
	serveArgs := []string{"serve", "--config", catDir, "--db", crashDB}
	served := map[string]bool{} // refs served after the last kill
	for k := 1; k <= 5; k++ {
		delay := 50*time.Millisecond + time.Duration(rnd.Int64N(int64(window)))
		srv := bin.start(t, dir, serveArgs...)
		select {
		case <-srv.done:
			t.Fatalf("serve #%d exited on its own (%s) before its kill; its log:\n%s", k, srv.exitStatus(), srv.log())
		case <-time.After(delay):
		}
		srv.signal(syscall.SIGKILL)
		srv.wait()
		if ws, ok := srv.state.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
			t.Fatalf("serve #%d ended with %s, not by SIGKILL; its log:\n%s", k, srv.exitStatus(), srv.log())
		}
		log := srv.log()

		// The lock died with the process. What a kill leaves served is a
		// subset of the reference, and nothing served before is lost.
		refs := strings.Fields(strings.ToLower(bin.mustRun(t, dir, "entities", "--db", crashDB)))
		for _, r := range refs {
			if ref[r] == nil {
				t.Errorf("after kill #%d, the database serves %s, which the reference does not", k, r)
			}
			delete(served, r)
		}
		if len(served) > 0 {
			t.Errorf("kill #%d lost %d served entities, such as %s", k, len(served), sortedKeys(served)[0])
		}
		served = map[string]bool{}
		for _, r := range refs {
			served[r] = true
		}
		t.Logf("serve #%d killed after %v: serving=%v caught_up=%v served=%d", k, delay.Round(time.Millisecond),
			reServing.MatchString(log), reCaughtUp.MatchString(log), len(refs))
	}

	// The last serve runs until it has caught up, then stops on SIGINT.
	// Caught up, serve prints the catalog summary, even when a killed serve
	// had left nothing due; it logs "caught up" only if it processed
	// anything.
	srv := bin.start(t, dir, serveArgs...)
	srv.waitForOutput(reSummaryEnd, 0)
	if _, m := srv.waitForOutput(reServed, 0); m[1] != strconv.Itoa(len(ref)) {
		t.Errorf("the last serve caught up serving %s entities, want %d; its summary:\n%s", m[1], len(ref), srv.stdout.String())
	}
	took := srv.stop(os.Interrupt)
	if limit := shutdownGrace + 5*time.Second; took > limit {
		t.Errorf("the last serve took %v to exit after SIGINT, want at most %v", took, limit)
	}
	processed := "0"
	if m := reCaughtUp.FindStringSubmatch(srv.log()); m != nil {
		processed = m[1]
	}
	t.Logf("the last serve processed %s entities before catching up and exited %v after SIGINT", processed, took.Round(time.Millisecond))
	compareCatalogs(t, "after the crashes and a last serve", ref, exportEntities(t, bin, dir, crashDB))

	// A one-shot run over the recovered database finds nothing to change.
	sum = bin.mustRun(t, dir, "run", "--once", "--config", catDir, "--db", crashDB, "--log-level", "warn")
	if !regexp.MustCompile(`: 0 written, \d+ unchanged, 0 created, 0 deleted`).MatchString(sum) {
		t.Errorf("run --once over the recovered database changed entities:\n%s", sum)
	}
	compareCatalogs(t, "after the crashes and run --once", ref, exportEntities(t, bin, dir, crashDB))
	t.Logf("crash test took %v", time.Since(start).Round(time.Millisecond))
}

// exportEntities returns `pipeline entities --json` by entity ref.
func exportEntities(t *testing.T, bin cli, dir, db string) map[string]map[string]any {
	t.Helper()
	out := bin.mustRun(t, dir, "entities", "--db", db, "--json")
	var list []map[string]any
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatalf("entities --json of %s: %v", db, err)
	}
	byRef := make(map[string]map[string]any, len(list))
	for _, e := range list {
		md, _ := e["metadata"].(map[string]any)
		ns, _ := md["namespace"].(string)
		if ns == "" {
			ns = "default"
		}
		ref := strings.ToLower(fmt.Sprint(e["kind"]) + ":" + ns + "/" + fmt.Sprint(md["name"]))
		if _, dup := byRef[ref]; dup {
			t.Errorf("entities --json of %s lists %s twice", db, ref)
		}
		byRef[ref] = e
	}
	return byRef
}

// compareCatalogs reports how got differs from want: refs, relations
// (type and target), annotations, and the rest of each entity with
// metadata.uid and metadata.etag removed.
func compareCatalogs(t *testing.T, what string, want, got map[string]map[string]any) {
	t.Helper()
	var problems []string
	add := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	for _, ref := range sortedRefs(want) {
		if got[ref] == nil {
			add("missing %s", ref)
		}
	}
	for _, ref := range sortedRefs(got) {
		if want[ref] == nil {
			add("extra %s", ref)
		}
	}
	for _, ref := range sortedRefs(want) {
		g := got[ref]
		if g == nil {
			continue
		}
		w := want[ref]
		if wr, gr := relationSet(w), relationSet(g); !slices.Equal(wr, gr) {
			add("%s: relations %v, want %v", ref, gr, wr)
		}
		if wa, ga := annotations(w), annotations(g); !reflect.DeepEqual(wa, ga) {
			add("%s: annotations %v, want %v", ref, ga, wa)
		}
		if wb, gb := withoutIdentity(w), withoutIdentity(g); !reflect.DeepEqual(wb, gb) {
			wj, _ := json.Marshal(wb)
			gj, _ := json.Marshal(gb)
			add("%s differs:\n  got  %s\n  want %s", ref, gj, wj)
		}
	}
	if len(problems) == 0 {
		return
	}
	const show = 20
	t.Errorf("%s, the catalog differs from an uninterrupted run's in %d ways (%d entities, want %d):\n%s",
		what, len(problems), len(got), len(want), strings.Join(problems[:min(show, len(problems))], "\n"))
}

func sortedKeys(m map[string]bool) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func sortedRefs(m map[string]map[string]any) []string {
	refs := make([]string, 0, len(m))
	for r := range m {
		refs = append(refs, r)
	}
	slices.Sort(refs)
	return refs
}

// relationSet is an entity's relations as sorted "type target" strings.
func relationSet(e map[string]any) []string {
	rels, _ := e["relations"].([]any)
	out := make([]string, 0, len(rels))
	for _, r := range rels {
		m, _ := r.(map[string]any)
		out = append(out, fmt.Sprint(m["type"], " ", m["targetRef"]))
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func annotations(e map[string]any) map[string]any {
	md, _ := e["metadata"].(map[string]any)
	a, _ := md["annotations"].(map[string]any)
	return a
}

// withoutIdentity is a copy of e without metadata.uid and metadata.etag,
// which differ between two databases by design.
func withoutIdentity(e map[string]any) map[string]any {
	c := make(map[string]any, len(e))
	for k, v := range e {
		c[k] = v
	}
	if md, ok := e["metadata"].(map[string]any); ok {
		mc := make(map[string]any, len(md))
		for k, v := range md {
			if k != "uid" && k != "etag" {
				mc[k] = v
			}
		}
		c["metadata"] = mc
	}
	return c
}
