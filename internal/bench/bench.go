// Package bench measures the engine end to end, the way a user meets it:
// a generated catalog ingested by a real `pipeline serve` process (builtin
// stages plus one JavaScript stage), queried over HTTP on loopback, then
// refreshed. It backs `pipeline bench` and `make bench`; figures go to
// BENCHMARKS.md with the command and machine that produced them.
package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/catalog-pipeline/pipeline/internal/gen"
	"github.com/catalog-pipeline/pipeline/internal/systemx"
)

// Options choose what to measure.
type Options struct {
	// Sizes are the catalog sizes to run (entities).
	Sizes []int
	// Work is the folder for generated catalogs and databases.
	Work string
	// Binary is the pipeline executable to run as the server.
	Binary string
	// Requests is how many requests each HTTP measure sends per
	// connection count (default 2000).
	Requests int
	// Log receives progress lines.
	Log io.Writer
}

// Latency is a p50/p99 pair.
type Latency struct{ P50, P99 time.Duration }

// Result holds the figures of one catalog size.
type Result struct {
	N                  int
	ColdSeconds        float64
	ColdRate           float64
	RefreshSeconds     float64
	RefreshRate        float64
	RefreshWrites      int
	SysXRequests       int
	SysXReprocessed    int
	SysXWrites         int
	HTTP               map[string]map[int]Latency // measure → connections → latency
	WalkComponents     time.Duration
	WalkPages          int
	PeakRSSMiB         float64
	PeakAnonMiB        float64
	DBMiB              float64
	ComponentsInWalk   int
	JSStageDescription string
}

// jsStage is the JavaScript postProcessEntity stage every benchmark run
// includes: it labels components, which touches the entity like a real
// enrichment script would.
const jsStage = `// Benchmark stage: labels components with their lifecycle.
module.exports = {
  name: "bench-label",
  postProcessEntity(entity) {
    if (entity.kind === "Component") {
      entity.metadata.labels = Object.assign({}, entity.metadata.labels, { "bench/lifecycle": String(entity.spec.lifecycle) });
    }
    return entity;
  },
};
`

// Run measures every size and returns the results in order.
func Run(ctx context.Context, o Options) ([]Result, error) {
	if o.Requests <= 0 {
		o.Requests = 2000
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	var out []Result
	for _, n := range o.Sizes {
		r, err := runSize(ctx, o, n)
		if err != nil {
			return out, fmt.Errorf("bench %d entities: %w", n, err)
		}
		out = append(out, r)
	}
	return out, nil
}

func runSize(ctx context.Context, o Options, n int) (Result, error) {
	res := Result{N: n, HTTP: map[string]map[int]Latency{}}
	dir := filepath.Join(o.Work, fmt.Sprintf("catalog-%d", n))
	if err := os.RemoveAll(dir); err != nil {
		return res, err
	}
	fmt.Fprintf(o.Log, "generating %d entities in %s\n", n, dir)
	if _, err := gen.Write(dir, gen.Options{N: n, Seed: 1}); err != nil {
		return res, err
	}
	if err := os.WriteFile(filepath.Join(dir, "bench-label.js"), []byte(jsStage), 0o644); err != nil {
		return res, err
	}
	// The generated pipeline gains the JS stage after the builtin ones.
	hcl, err := os.ReadFile(filepath.Join(dir, "pipeline.hcl"))
	if err != nil {
		return res, err
	}
	i := bytes.LastIndexByte(hcl, '}')
	hcl = append(hcl[:i:i], []byte("  stage \"bench-label\" {\n    script = \"./bench-label.js\"\n  }\n}\n")...)
	if err := os.WriteFile(filepath.Join(dir, "pipeline.hcl"), hcl, 0o644); err != nil {
		return res, err
	}
	db := filepath.Join(o.Work, fmt.Sprintf("catalog-%d.db", n))
	for _, p := range []string{db} {
		if err := os.RemoveAll(p); err != nil {
			return res, err
		}
	}

	// 1. Cold ingest by a serving process, until caught up.
	addr, err := freeAddr()
	if err != nil {
		return res, err
	}
	fmt.Fprintf(o.Log, "cold ingest: serve on %s\n", addr)
	srv, err := startServe(ctx, o.Binary, dir, db, addr)
	if err != nil {
		return res, err
	}
	defer srv.stop()
	start := srv.started
	// Sample the anonymous (heap) part of the resident set while ingesting:
	// VmHWM also counts the pages of the memory-mapped database file, which
	// the kernel can drop at will.
	sampled := make(chan float64)
	sampleCtx, stopSampling := context.WithCancel(ctx)
	go func() {
		peak := 0.0
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			peak = max(peak, procStatus(srv.cmd.Process.Pid, "RssAnon:"))
			select {
			case <-sampleCtx.Done():
				sampled <- peak
				return
			case <-t.C:
			}
		}
	}()
	err = srv.waitFor(ctx, `msg="caught up"`, 30*time.Minute)
	stopSampling()
	res.PeakAnonMiB = <-sampled
	if err != nil {
		return res, err
	}
	res.ColdSeconds = time.Since(start).Seconds()
	res.ColdRate = float64(n) / res.ColdSeconds
	res.PeakRSSMiB = procStatus(srv.cmd.Process.Pid, "VmHWM:")
	fmt.Fprintf(o.Log, "cold ingest: %.2f s, %.0f entities/s, peak RSS %.0f MiB (heap part %.0f MiB)\n", res.ColdSeconds, res.ColdRate, res.PeakRSSMiB, res.PeakAnonMiB)

	// 2. Queries over HTTP against the running server.
	base := "http://" + addr
	if err := measureHTTP(ctx, o, base, &res); err != nil {
		return res, err
	}
	if err := srv.stop(); err != nil {
		return res, err
	}
	if st, err := os.Stat(db); err == nil {
		res.DBMiB = float64(st.Size()) / (1 << 20)
	}

	// 3. A full refresh pass when nothing changed.
	out, err := exec.CommandContext(ctx, o.Binary, "run", "--once", "--config", dir, "--db", db, "--log-level", "warn").CombinedOutput()
	if err != nil {
		return res, fmt.Errorf("refresh pass: %w\n%s", err, out)
	}
	m := regexp.MustCompile(`processed (\d+) entities in ([^ ]+) \((\d+)/s\): (\d+) written`).FindSubmatch(out)
	if m == nil {
		return res, fmt.Errorf("refresh pass: no summary in output:\n%s", out)
	}
	d, _ := time.ParseDuration(string(m[2]))
	res.RefreshSeconds = d.Seconds()
	processed, _ := strconv.Atoi(string(m[1]))
	res.RefreshRate = float64(processed) / d.Seconds()
	res.RefreshWrites, _ = strconv.Atoi(string(m[4]))
	fmt.Fprintf(o.Log, "refresh pass: %.2f s, %.0f entities/s, %d writes\n", res.RefreshSeconds, res.RefreshRate, res.RefreshWrites)

	// 4. A System-X location refreshed while upstream answers 304.
	if err := measureSystemX(ctx, o, &res); err != nil {
		return res, err
	}
	return res, nil
}

// server is a running `pipeline serve` child.
type server struct {
	cmd     *exec.Cmd
	started time.Time
	mu      sync.Mutex
	log     bytes.Buffer
	lines   chan string
	stopped bool
}

func startServe(ctx context.Context, bin, dir, db, addr string) (*server, error) {
	cmd := exec.CommandContext(ctx, bin, "serve", "--config", dir, "--db", db, "--listen", addr)
	cmd.Stdout = io.Discard
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	s := &server{cmd: cmd, lines: make(chan string, 1024)}
	s.started = time.Now()
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			s.mu.Lock()
			s.log.WriteString(sc.Text() + "\n")
			s.mu.Unlock()
			select {
			case s.lines <- sc.Text():
			default:
			}
		}
		close(s.lines)
	}()
	return s, nil
}

func (s *server) waitFor(ctx context.Context, marker string, limit time.Duration) error {
	deadline := time.After(limit)
	for {
		select {
		case line, ok := <-s.lines:
			if !ok {
				return fmt.Errorf("server exited before %q:\n%s", marker, s.output())
			}
			if strings.Contains(line, marker) {
				return nil
			}
		case <-deadline:
			return fmt.Errorf("no %q within %s:\n%s", marker, limit, s.output())
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (s *server) output() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.log.String()
}

func (s *server) stop() error {
	if s.stopped {
		return nil
	}
	s.stopped = true
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	err := s.cmd.Wait()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return fmt.Errorf("server exited with %v:\n%s", err, s.output())
	}
	return err
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// procStatus reads a memory figure (in MiB) of /proc/PID/status, such as
// the high-water mark of the resident set (VmHWM) or its anonymous part.
func procStatus(pid int, field string) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == field {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	return 0
}

// Measures, in table order. The first is the floor: /healthz does no
// catalog work, so its latency is what the HTTP stack, loopback and the
// machine's scheduling cost every other measure.
var measures = []string{"healthz (floor: no catalog work)", "by-name", "by-query kind=component limit=100", "by-query spec.owner filter", "entity-facets spec.type"}

func measureHTTP(ctx context.Context, o Options, base string, res *Result) error {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}, Timeout: 30 * time.Second}
	// Sample refs and owners from the catalog itself.
	var page struct {
		Items []struct {
			Kind     string `json:"kind"`
			Metadata struct {
				Name      string `json:"name"`
				Namespace string `json:"namespace"`
			} `json:"metadata"`
			Spec struct {
				Owner string `json:"owner"`
			} `json:"spec"`
		} `json:"items"`
	}
	if err := getJSON(ctx, client, base+"/api/catalog/entities/by-query?filter=kind=component&limit=500", &page); err != nil {
		return err
	}
	if len(page.Items) == 0 {
		return errors.New("no components served")
	}
	urls := map[string][]string{}
	for _, it := range page.Items {
		urls["by-name"] = append(urls["by-name"], fmt.Sprintf("%s/api/catalog/entities/by-name/component/%s/%s", base, it.Metadata.Namespace, it.Metadata.Name))
		urls["by-query spec.owner filter"] = append(urls["by-query spec.owner filter"],
			base+"/api/catalog/entities/by-query?filter="+url.QueryEscape("kind=component,spec.owner="+it.Spec.Owner)+"&limit=100")
	}
	urls["healthz (floor: no catalog work)"] = []string{base + "/healthz"}
	urls["by-query kind=component limit=100"] = []string{base + "/api/catalog/entities/by-query?filter=kind=component&limit=100"}
	urls["entity-facets spec.type"] = []string{base + "/api/catalog/entity-facets?facet=spec.type"}
	for _, m := range measures {
		res.HTTP[m] = map[int]Latency{}
		for _, conns := range []int{1, 32} {
			lat, err := load(ctx, client, urls[m], o.Requests, conns)
			if err != nil {
				return fmt.Errorf("%s: %w", m, err)
			}
			res.HTTP[m][conns] = lat
			fmt.Fprintf(o.Log, "%-36s %2d conns: p50 %s p99 %s\n", m, conns, lat.P50, lat.P99)
		}
	}
	// A full cursor walk of all components.
	start := time.Now()
	next := base + "/api/catalog/entities/by-query?filter=kind=component&limit=500"
	for next != "" {
		var p struct {
			Items    []json.RawMessage `json:"items"`
			PageInfo struct {
				NextCursor string `json:"nextCursor"`
			} `json:"pageInfo"`
		}
		if err := getJSON(ctx, client, next, &p); err != nil {
			return err
		}
		res.WalkPages++
		res.ComponentsInWalk += len(p.Items)
		next = ""
		if p.PageInfo.NextCursor != "" {
			next = base + "/api/catalog/entities/by-query?limit=500&cursor=" + url.QueryEscape(p.PageInfo.NextCursor)
		}
	}
	res.WalkComponents = time.Since(start)
	fmt.Fprintf(o.Log, "cursor walk: %d components in %d pages, %s\n", res.ComponentsInWalk, res.WalkPages, res.WalkComponents)
	return nil
}

func getJSON(ctx context.Context, c *http.Client, u string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s: %s", u, resp.Status, body)
	}
	return json.Unmarshal(body, v)
}

// load sends total requests over conns connections, cycling through urls,
// and returns the latency percentiles. Every response must be 200.
func load(ctx context.Context, c *http.Client, urls []string, total, conns int) (Latency, error) {
	lat := make([]time.Duration, total)
	var wg sync.WaitGroup
	var firstErr error
	var mu sync.Mutex
	next := make(chan int)
	for range conns {
		wg.Go(func() {
			for i := range next {
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, urls[i%len(urls)], nil)
				t0 := time.Now()
				resp, err := c.Do(req)
				if err == nil {
					_, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if err == nil && resp.StatusCode != http.StatusOK {
						err = fmt.Errorf("%s: %s", urls[i%len(urls)], resp.Status)
					}
				}
				lat[i] = time.Since(t0)
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
				}
			}
		})
	}
	for i := range total {
		next <- i
	}
	close(next)
	wg.Wait()
	if firstErr != nil {
		return Latency{}, firstErr
	}
	slices.Sort(lat)
	return Latency{P50: lat[total*50/100], P99: lat[total*99/100]}, nil
}

// measureSystemX ingests a System-X location from the fake server, then
// refreshes only that location while upstream answers 304, through a
// one-shot turn of the loop in a child process (`pipeline bench-sysx`).
func measureSystemX(ctx context.Context, o Options, res *Result) error {
	srv := systemx.New(systemx.DefaultRecords())
	defer srv.Close()
	dir := filepath.Join(o.Work, "system-x")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	script, err := findScript()
	if err != nil {
		return err
	}
	u, _ := url.Parse(srv.URL())
	hcl := fmt.Sprintf(`pipeline "system-x" {
  allow_hosts = [%q]
  location "system-x" {
    target = %q
  }
  stage "placeholders" {}
  stage "builtin-kinds" {}
  stage "annotate-location" {}
  stage "system-x" {
    script = %q
  }
}
`, u.Hostname(), srv.URL(), script)
	if err := os.WriteFile(filepath.Join(dir, "system-x.hcl"), []byte(hcl), 0o644); err != nil {
		return err
	}
	db := filepath.Join(o.Work, "system-x.db")
	_ = os.Remove(db)
	out, err := exec.CommandContext(ctx, o.Binary, "bench-refresh", "--config", dir, "--db", db,
		"--location", "system-x:"+srv.URL()).CombinedOutput()
	if err != nil {
		return fmt.Errorf("system-x refresh: %w\n%s", err, out)
	}
	var r struct{ Processed, Written int }
	if err := json.Unmarshal(lastLine(out), &r); err != nil {
		return fmt.Errorf("system-x refresh output: %w\n%s", err, out)
	}
	// Requests: the first (200) ingest, then the refresh.
	res.SysXRequests = srv.Requests() - 1
	res.SysXReprocessed = r.Processed
	res.SysXWrites = r.Written
	fmt.Fprintf(o.Log, "system-x 304 refresh: %d upstream requests (%d answered 304), %d entities reprocessed, %d written\n",
		res.SysXRequests, srv.NotModified(), r.Processed, r.Written)
	return nil
}

func lastLine(b []byte) []byte {
	lines := bytes.Split(bytes.TrimSpace(b), []byte("\n"))
	return lines[len(lines)-1]
}

// findScript locates scripts/system-x.js from the working directory up.
func findScript() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		p := filepath.Join(dir, "scripts", "system-x.js")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("scripts/system-x.js not found above the working directory; run from the repository")
		}
		dir = parent
	}
}

// Machine describes where the figures were taken.
func Machine() string {
	mem := ""
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		if f := strings.Fields(strings.SplitN(string(b), "\n", 2)[0]); len(f) >= 2 {
			kb, _ := strconv.ParseFloat(f[1], 64)
			mem = fmt.Sprintf(", %.1f GiB memory", kb/(1<<20))
		}
	}
	return fmt.Sprintf("%d CPUs (nproc)%s, %s, %s/%s", runtime.NumCPU(), mem, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

// Table renders results as the Markdown table of BENCHMARKS.md.
func Table(rs []Result) string {
	var b strings.Builder
	b.WriteString("| measure |")
	for _, r := range rs {
		fmt.Fprintf(&b, " %d entities |", r.N)
	}
	b.WriteString("\n|---|")
	for range rs {
		b.WriteString("---|")
	}
	b.WriteString("\n")
	row := func(name string, f func(r Result) string) {
		fmt.Fprintf(&b, "| %s |", name)
		for _, r := range rs {
			fmt.Fprintf(&b, " %s |", f(r))
		}
		b.WriteString("\n")
	}
	row("cold ingest, builtin + 1 JS stage (to queryable)", func(r Result) string {
		return fmt.Sprintf("%.0f entities/s (%.1f s)", r.ColdRate, r.ColdSeconds)
	})
	row("refresh pass, nothing changed", func(r Result) string {
		return fmt.Sprintf("%.0f entities/s (%.1f s), %d entity writes", r.RefreshRate, r.RefreshSeconds, r.RefreshWrites)
	})
	row("System-X refresh answered 304", func(r Result) string {
		return fmt.Sprintf("%d upstream request(s), %d reprocessed, %d writes", r.SysXRequests, r.SysXReprocessed, r.SysXWrites)
	})
	for _, m := range measures {
		for _, c := range []int{1, 32} {
			row(fmt.Sprintf("%s, %d conn p50 / p99", m, c), func(r Result) string {
				l := r.HTTP[m][c]
				return fmt.Sprintf("%s / %s", round(l.P50), round(l.P99))
			})
		}
	}
	row("full cursor walk of all components", func(r Result) string {
		return fmt.Sprintf("%s (%d components, %d pages)", round(r.WalkComponents), r.ComponentsInWalk, r.WalkPages)
	})
	row("peak RSS during cold ingest (anonymous part)", func(r Result) string {
		return fmt.Sprintf("%.0f MiB (%.0f MiB)", r.PeakRSSMiB, r.PeakAnonMiB)
	})
	row("DB file size", func(r Result) string { return fmt.Sprintf("%.0f MiB", r.DBMiB) })
	return b.String()
}

func round(d time.Duration) string {
	switch {
	case d >= time.Second:
		return d.Round(10 * time.Millisecond).String()
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond).String()
	default:
		return d.Round(time.Microsecond).String()
	}
}
