package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/catalog-pipeline/pipeline/internal/gen"
)

// The serve tests run `pipeline` as a child process, so that signals,
// exit codes and the file lock behave as in production. The child is this
// test binary itself (built with -race when the tests are): with cliEnv set,
// init runs Main with the child's arguments and exits before TestMain.
// The crash test builds a separate, non-race binary (crash_test.go).
const cliEnv = "PIPELINE_TEST_RUN_CLI"

func init() {
	if os.Getenv(cliEnv) == "1" {
		os.Exit(Main(os.Args[1:], os.Stdout, os.Stderr))
	}
}

// deadline bounds every wait for a log line or an exit. It is generous on
// purpose: the tests never assert how long something takes, only that it
// happens (a loaded machine running -race may be slow).
const deadline = 60 * time.Second

// testCLI is the command that runs this test binary as `pipeline`.
func testCLI(t *testing.T) cli {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// A race-enabled child sleeps a second before exiting unless told not to.
	gorace := strings.TrimSpace(os.Getenv("GORACE") + " atexit_sleep_ms=0")
	return cli{path: exe, env: []string{cliEnv + "=1", "GORACE=" + gorace}}
}

// cli is a way to run the pipeline binary.
type cli struct {
	path string
	env  []string // added to the environment
}

func (c cli) command(dir string, args ...string) *exec.Cmd {
	cmd := exec.Command(c.path, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), c.env...)
	return cmd
}

// run runs a one-shot command to completion.
func (c cli) run(t *testing.T, dir string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errOut bytes.Buffer
	cmd := c.command(dir, args...)
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee) && ee.Exited():
		code = ee.ExitCode()
	default:
		t.Fatalf("pipeline %s: %v\n%s", strings.Join(args, " "), err, errOut.String())
	}
	return out.String(), errOut.String(), code
}

// mustRun runs a one-shot command that must exit 0 and returns its stdout.
func (c cli) mustRun(t *testing.T, dir string, args ...string) string {
	t.Helper()
	out, errOut, code := c.run(t, dir, args...)
	if code != exitOK {
		t.Fatalf("pipeline %s exited %d:\n%s%s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

// child is a running `pipeline` whose stderr (the log) and stdout are
// collected line by line as they come.
type child struct {
	t    *testing.T
	name string
	cmd  *exec.Cmd

	stderr, stdout stream

	done     chan struct{} // closed once the process has exited and its output is read
	state    *os.ProcessState
	waitErr  error
	exitedAt time.Time
}

// stream is the lines a child wrote to one of its outputs so far.
type stream struct {
	mu      sync.Mutex
	lines   []string
	changed chan struct{} // closed and replaced whenever lines grow
}

func (s *stream) read(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	for sc.Scan() {
		s.mu.Lock()
		s.lines = append(s.lines, sc.Text())
		close(s.changed)
		s.changed = make(chan struct{})
		s.mu.Unlock()
	}
}

// find returns the first line at index from or later that matches re,
// with its index and submatches; when there is none, it returns -1, the
// number of lines, and a channel closed when more come.
func (s *stream) find(re *regexp.Regexp, from int) (int, []string, int, <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := from; i < len(s.lines); i++ {
		if m := re.FindStringSubmatch(s.lines[i]); m != nil {
			return i, m, 0, nil
		}
	}
	return -1, nil, len(s.lines), s.changed
}

func (s *stream) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Join(s.lines, "\n")
}

func (s *stream) line(i int) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lines[i]
}

func (s *stream) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.lines)
}

// start starts a long-running command in dir. The process is killed when
// the test ends if it is still running.
func (c cli) start(t *testing.T, dir string, args ...string) *child {
	t.Helper()
	cmd := c.command(dir, args...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	ch := &child{t: t, name: "pipeline " + strings.Join(args, " "), cmd: cmd, done: make(chan struct{})}
	ch.stderr.changed = make(chan struct{})
	ch.stdout.changed = make(chan struct{})
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		var wg sync.WaitGroup
		wg.Go(func() { ch.stderr.read(stderr) })
		wg.Go(func() { ch.stdout.read(stdout) })
		wg.Wait() // Wait closes the pipes: read them to the end first
		err := cmd.Wait()
		ch.state, ch.waitErr, ch.exitedAt = cmd.ProcessState, err, time.Now()
		close(ch.done)
	}()
	t.Cleanup(func() {
		if !ch.exited() {
			cmd.Process.Kill()
			<-ch.done
		}
	})
	return ch
}

// log returns the log (stderr) so far.
func (c *child) log() string { return c.stderr.String() }

// line returns log line i.
func (c *child) line(i int) string { return c.stderr.line(i) }

// lineCount is the number of log lines so far: pass it to waitFor to look
// only at what comes next.
func (c *child) lineCount() int { return c.stderr.count() }

// exited reports whether the process has exited.
func (c *child) exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// waitFor waits for a log line at index from or later that matches re and
// returns its index and submatches. It fails the test if the process exits
// first or nothing matches within the deadline.
func (c *child) waitFor(re *regexp.Regexp, from int) (int, []string) {
	c.t.Helper()
	return c.waitIn(&c.stderr, "log", re, from)
}

// waitForOutput is waitFor on stdout.
func (c *child) waitForOutput(re *regexp.Regexp, from int) (int, []string) {
	c.t.Helper()
	return c.waitIn(&c.stdout, "output", re, from)
}

func (c *child) waitIn(s *stream, what string, re *regexp.Regexp, from int) (int, []string) {
	c.t.Helper()
	timeout := time.After(deadline)
	for {
		i, m, n, changed := s.find(re, from)
		if i >= 0 {
			return i, m
		}
		from = max(from, n)
		select {
		case <-changed:
		case <-c.done:
			// All output is read: look once more, then give up.
			if i, m, _, _ := s.find(re, from); i >= 0 {
				return i, m
			}
			c.t.Fatalf("%s exited (%s) with no %s line matching %q; its log:\n%s\nits output:\n%s",
				c.name, c.exitStatus(), what, re, c.log(), c.stdout.String())
		case <-timeout:
			c.t.Fatalf("%s wrote no %s line matching %q within %s; its log:\n%s\nits output:\n%s",
				c.name, what, re, deadline, c.log(), c.stdout.String())
		}
	}
}

func (c *child) signal(sig os.Signal) {
	c.t.Helper()
	if err := c.cmd.Process.Signal(sig); err != nil {
		c.t.Fatalf("signal %v to %s: %v\n%s", sig, c.name, err, c.log())
	}
}

// exitStatus describes how the process ended (after done is closed).
func (c *child) exitStatus() string {
	if c.state == nil {
		return fmt.Sprint(c.waitErr)
	}
	return c.state.String()
}

// wait waits for the process to exit and returns its exit code, or -1 if a
// signal killed it.
func (c *child) wait() int {
	c.t.Helper()
	select {
	case <-c.done:
	case <-time.After(deadline):
		c.t.Fatalf("%s did not exit within %s; its log:\n%s", c.name, deadline, c.log())
	}
	if c.state == nil {
		c.t.Fatalf("%s: %v", c.name, c.waitErr)
	}
	return c.state.ExitCode()
}

// stop sends sig, waits for the exit and checks that serve stopped
// cleanly: exit code 0 and "stopped cleanly" logged. It returns how long
// the exit took after the signal (reported, not asserted).
func (c *child) stop(sig os.Signal) time.Duration {
	c.t.Helper()
	sent := time.Now()
	c.signal(sig)
	if code := c.wait(); code != exitOK {
		c.t.Fatalf("%s exited with %s after %v, want exit code 0; its log:\n%s", c.name, c.exitStatus(), sig, c.log())
	}
	took := c.exitedAt.Sub(sent)
	if !strings.Contains(c.log(), `msg="stopped cleanly"`) {
		c.t.Errorf("%s exited 0 but did not log \"stopped cleanly\"; its log:\n%s", c.name, c.log())
	}
	return took
}

var (
	reServing  = regexp.MustCompile(`msg=serving `)
	reCaughtUp = regexp.MustCompile(`msg="caught up" processed=(\d+) written=(\d+)`)
	reReloaded = regexp.MustCompile(`msg="configuration reloaded" .*pipelines=(\d+)`)
	// serve prints the catalog summary once caught up, ending with:
	reSummaryEnd = regexp.MustCompile(`^entities with errors: \d+$`)
	reServed     = regexp.MustCompile(`^served entities: (\d+)$`)
	reInvalid    = regexp.MustCompile(`level=ERROR msg="pipeline files changed but are not valid; the last good configuration keeps running"`)
)

// TestServeStopsCleanly: serve on the example pipelines catches up, keeps
// the database locked while it runs, and on SIGTERM exits 0 well within
// its shutdown grace, after which the database opens again.
func TestServeStopsCleanly(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	p := testCLI(t)
	dir := t.TempDir()
	db := filepath.Join(dir, "catalog.db")
	srv := p.start(t, dir, "serve", "--config", filepath.Join(root, "pipelines"), "--db", db)
	srv.waitFor(reCaughtUp, 0)
	// Caught up, serve prints the catalog summary.
	srv.waitForOutput(reSummaryEnd, 0)
	_, m := srv.waitForOutput(reServed, 0)
	served := atoi(t, m[1])

	// The database is single-process: a reader fails fast, naming the lock.
	_, errOut, code := p.run(t, dir, "entities", "--db", db)
	if code != exitFail || !strings.Contains(errOut, "locked by another process") {
		t.Errorf("entities while serve runs: exit %d, stderr %q; want exit 1 naming the lock", code, errOut)
	}

	took := srv.stop(syscall.SIGTERM)
	t.Logf("serve exited %v after SIGTERM", took.Round(time.Millisecond))
	if !strings.Contains(srv.log(), `msg=stopping`) {
		t.Errorf("serve did not log \"stopping\":\n%s", srv.log())
	}

	out := p.mustRun(t, dir, "entities", "--db", db)
	if n := strings.Count(out, "\n"); n != served || !strings.Contains(out, "component:default/") {
		t.Errorf("entities after serve lists %d entities, the summary said %d:\n%s", n, served, out)
	}
	// What serve left is what a one-shot run of the same pipelines keeps:
	// nothing is rewritten.
	sum := p.mustRun(t, dir, "run", "--once", "--config", filepath.Join(root, "pipelines"), "--db", db, "--log-level", "warn")
	if !regexp.MustCompile(`: 0 written, \d+ unchanged`).MatchString(sum) {
		t.Errorf("run --once after serve rewrote entities:\n%s", sum)
	}
}

// TestServeStopsDuringIngest: SIGINT while a generated catalog is being
// ingested abandons the batch in flight and exits 0; the database is intact
// and a one-shot run completes it, finding unchanged what serve committed.
func TestServeStopsDuringIngest(t *testing.T) {
	dir := t.TempDir()
	catDir := filepath.Join(dir, "catalog")
	st, err := gen.Write(catDir, gen.Options{N: 1000, Seed: 11})
	if err != nil {
		t.Fatal(err)
	}
	p := testCLI(t)
	db := filepath.Join(dir, "catalog.db")
	srv := p.start(t, dir, "serve", "--config", catDir, "--db", db, "--log-level", "debug")
	// The file stage logs each file it reads: once it has read the last
	// entity file, serve is in the middle of processing the batch with the
	// Location that lists them all (the root Location is committed).
	last := fmt.Sprintf("entities-%04d.yaml", st.Files-2) // Files counts catalog-info.yaml
	srv.waitFor(regexp.MustCompile(`msg="read file" .*path=\S*`+regexp.QuoteMeta(last)), 0)
	took := srv.stop(os.Interrupt)
	t.Logf("serve exited %v after SIGINT (caught up before the signal: %v)", took.Round(time.Millisecond), reCaughtUp.MatchString(srv.log()))

	sum := p.mustRun(t, dir, "run", "--once", "--config", catDir, "--db", db, "--log-level", "warn")
	want := fmt.Sprintf("served entities: %d\n", st.Entities+1) // + the root Location
	if !strings.Contains(sum, want) || !strings.Contains(sum, "entities with errors: 0") {
		t.Errorf("run --once after an interrupted serve: want %q and no errors, got:\n%s", want, sum)
	}
	m := regexp.MustCompile(`(\d+) written, (\d+) unchanged`).FindStringSubmatch(sum)
	if m == nil || m[2] == "0" {
		t.Errorf("run --once after an interrupted serve found nothing serve wrote unchanged:\n%s", sum)
	} else {
		t.Logf("run --once after serve: %s written, %s unchanged", m[1], m[2])
	}
}

// TestServeHotReload edits the configuration of a running serve: a new
// pipeline file is ingested; a broken edit is logged and the last good
// configuration keeps running (and refreshing); fixing it reloads again,
// and a pipeline location dropped by the fix has its entities removed.
func TestServeHotReload(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "conf")
	// write replaces a file atomically, as editors do, so that neither the
	// watcher nor a refresh ever reads it half written.
	write := func(name, content string) {
		t.Helper()
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path+".tmp", []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(path+".tmp", path); err != nil {
			t.Fatal(err)
		}
	}
	// Pipeline a refreshes every second, so that an edit of its catalog
	// shows whether it keeps running while the configuration is broken.
	write("conf/a.hcl", pipelineHCL("a", "../cat/a.yaml", `interval = "1s"`))
	write("cat/a.yaml", component("one"))
	write("cat/b.yaml", component("two"))
	write("cat/c.yaml", component("four"))

	p := testCLI(t)
	db := filepath.Join(dir, "catalog.db")
	srv := p.start(t, dir, "serve", "--config", conf, "--db", db)
	_, m := srv.waitFor(reCaughtUp, 0)
	written := atoi(t, m[2])

	// waitWritten waits for a "caught up" line after line from that reports
	// more writes than before: the refresh has taken in a change.
	waitWritten := func(from int) {
		t.Helper()
		for {
			i, m := srv.waitFor(reCaughtUp, from)
			if w := atoi(t, m[2]); w > written {
				written = w
				return
			}
			from = i + 1
		}
	}

	// 1. A second pipeline file: reloaded, its location ingested at once.
	from := srv.lineCount()
	write("conf/b.hcl", pipelineHCL("b", "../cat/b.yaml", ""))
	i, m := srv.waitFor(reReloaded, from)
	if m[1] != "2" {
		t.Errorf("reload after adding b.hcl: %q, want pipelines=2", srv.line(i))
	}
	waitWritten(i + 1)

	// 2. A broken edit: logged with its diagnostics, serve keeps running
	// the last good configuration: an entity added to pipeline a's catalog
	// is still ingested by the refresh.
	from = srv.lineCount()
	write("conf/b.hcl", "pipeline \"b\" {\n  location \"file\" {\n    target = \n  }\n}\n")
	i, _ = srv.waitFor(reInvalid, from)
	if line := srv.line(i); !strings.Contains(line, "b.hcl:3") {
		t.Errorf("the log of the broken edit does not name b.hcl:3:\n%s", line)
	}
	write("cat/a.yaml", component("one")+"---\n"+component("three"))
	waitWritten(i + 1)
	if srv.exited() {
		t.Fatalf("serve exited after a broken edit: %s\n%s", srv.exitStatus(), srv.log())
	}

	// 3. The fix reloads; pipeline b now reads c.yaml instead of b.yaml.
	from = srv.lineCount()
	write("conf/b.hcl", pipelineHCL("b", "../cat/c.yaml", ""))
	i, m = srv.waitFor(reReloaded, from)
	if m[1] != "2" {
		t.Errorf("reload after fixing b.hcl: %q, want pipelines=2", srv.line(i))
	}
	waitWritten(i + 1)

	srv.stop(syscall.SIGTERM)
	got := p.mustRun(t, dir, "entities", "--db", db, "--kind", "component")
	want := "component:default/four\ncomponent:default/one\ncomponent:default/three\n"
	if got != want {
		t.Errorf("components after the reloads:\n%s\nwant:\n%s\nserve's log:\n%s", got, want, srv.log())
	}
}

// pipelineHCL is a pipeline file reading one catalog file with the
// builtin stages; extra goes into the pipeline block.
func pipelineHCL(name, target, extra string) string {
	return fmt.Sprintf(`pipeline %q {
  %s
  location "file" {
    target = %q
  }
  stage "placeholders" {}
  stage "builtin-kinds" {}
  stage "file" {}
  stage "annotate-location" {}
}
`, name, extra, target)
}

func component(name string) string {
	return fmt.Sprintf(`apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: %s
spec:
  type: service
  lifecycle: production
  owner: rockets
`, name)
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}
