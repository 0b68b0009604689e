// Package reading performs the file and network reads of a pipeline, confined
// to what the pipeline allows.
//
// Stages (Go and JavaScript alike) never touch os or net/http directly: they
// read through a *Reader built from the pipeline's Policy, so that a catalog
// file, a location registered over the HTTP API or a script cannot make the
// engine read /etc/passwd or call an internal service. The checks live in one
// place, here, instead of being repeated (and forgotten) in every stage.
//
// A zero Policy allows nothing: no folder and no host. Errors wrap the
// sentinels ErrNotFound, ErrNotAllowed and ErrNotModified so that callers can
// map them to Backstage's error names with errors.Is.
package reading

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Defaults applied when a Policy leaves a limit at zero. They bound memory
// and the time a worker can be held by one slow upstream.
const (
	DefaultMaxBytes int64         = 10 << 20
	DefaultTimeout  time.Duration = 30 * time.Second
)

// Sentinel errors. Errors returned by a Reader wrap one of them when it
// applies, and carry a message naming the path or URL; test with errors.Is.
var (
	// ErrNotModified is returned by Fetch when the server answered 304 to
	// the ETag the caller sent; the Response is returned alongside it.
	ErrNotModified = errors.New("not modified")
	// ErrNotFound means the file or URL does not exist (HTTP 404 or 410), so
	// that a location reader can honour "optional" locations.
	ErrNotFound = errors.New("not found")
	// ErrNotAllowed means the Policy forbids the read; the target was not
	// touched.
	ErrNotAllowed = errors.New("not allowed")
)

// Policy says what a Reader may read. It is built from a pipeline's
// configuration.
type Policy struct {
	// Roots are absolute folders; files are readable only under them. Both
	// the cleaned path and the path with symlinks resolved must lie under a
	// root, so neither "../" nor a symlink can escape.
	Roots []string
	// Hosts are the hosts URLs may name: "example.com" (any port),
	// "example.com:8443" (that port only), "*.example.com" (any subdomain,
	// not example.com itself) or "*" (any host). Matching ignores case.
	Hosts []string
	// MaxBytes limits the size of a file or response body; DefaultMaxBytes
	// when 0.
	MaxBytes int64
	// Timeout bounds one HTTP request including reading its body;
	// DefaultTimeout when 0.
	Timeout time.Duration
}

// Reader performs confined reads. It is safe for concurrent use; build one
// per pipeline with New and share it between stages.
type Reader struct {
	policy Policy
	// roots are the cleaned roots; resolved the same with symlinks resolved
	// (entries are "" when a root did not exist when the Reader was built,
	// and are resolved again on use).
	roots    []string
	resolved []string
	hosts    []hostPattern
	client   *http.Client
}

type hostPattern struct {
	any      bool   // "*"
	suffix   string // ".example.com" for "*.example.com"
	host     string // exact host otherwise
	port     string // "" = any port
	original string
}

// New builds a Reader for p, with its own HTTP client whose timeouts follow
// p.Timeout (so that one stage cannot change another's client settings).
// Relative roots are ignored: a root must be absolute to mean anything.
func New(p Policy) *Reader {
	if p.MaxBytes <= 0 {
		p.MaxBytes = DefaultMaxBytes
	}
	if p.Timeout <= 0 {
		p.Timeout = DefaultTimeout
	}
	r := &Reader{}
	var roots []string
	for _, root := range p.Roots {
		if !filepath.IsAbs(root) {
			continue
		}
		c := filepath.Clean(root)
		roots = append(roots, c)
		r.roots = append(r.roots, c)
		res, err := filepath.EvalSymlinks(c)
		if err != nil {
			res = ""
		}
		r.resolved = append(r.resolved, res)
	}
	p.Roots = roots
	p.Hosts = slices.Clone(p.Hosts)
	for _, h := range p.Hosts {
		r.hosts = append(r.hosts, parseHostPattern(h))
	}
	r.policy = p

	tr := &http.Transport{
		Proxy: http.ProxyFromEnvironment,
		DialContext: (&net.Dialer{
			Timeout:   min(10*time.Second, p.Timeout),
			KeepAlive: 30 * time.Second,
		}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          100,
		MaxIdleConnsPerHost:   10,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   min(10*time.Second, p.Timeout),
		ResponseHeaderTimeout: p.Timeout,
		ExpectContinueTimeout: time.Second,
	}
	r.client = &http.Client{
		Transport:     tr,
		Timeout:       p.Timeout,
		CheckRedirect: r.checkRedirect,
	}
	return r
}

// Policy returns the policy in effect: defaults filled in and roots cleaned,
// so that status pages show what is really enforced.
func (r *Reader) Policy() Policy {
	p := r.policy
	p.Roots = slices.Clone(p.Roots)
	p.Hosts = slices.Clone(p.Hosts)
	return p
}

// FetchOptions tune one Fetch or Read.
type FetchOptions struct {
	// ETag, when set, is sent as If-None-Match; a 304 answer then yields
	// ErrNotModified so that the caller can reuse what it cached.
	ETag string
	// Header holds extra request headers (for instance Authorization).
	Header map[string]string
}

// Response is the outcome of a read. For files, Status is 200 and only Body
// and URL are set.
type Response struct {
	Status int
	ETag   string
	Header http.Header
	Body   []byte
	// URL is the URL finally read (after redirects), or the file path.
	URL string
}

// ---- files ----

// ReadFile reads a whole file under one of the roots. It fails with
// ErrNotAllowed when the path (cleaned, or with symlinks resolved) is outside
// the roots or is not absolute, with ErrNotFound when it does not exist, and
// with an error when it is larger than MaxBytes or is not a regular file.
//
// A Sources in ctx (WithSources) records the file's stamp; a failed read
// makes it volatile.
func (r *Reader) ReadFile(ctx context.Context, path string) ([]byte, error) {
	src := sourcesOf(ctx)
	data, resolved, st, err := r.readFile(path)
	if err != nil {
		src.MarkVolatile()
		return nil, err
	}
	src.file(path, resolved, st, data, time.Now())
	return data, nil
}

func (r *Reader) readFile(path string) ([]byte, string, os.FileInfo, error) {
	resolved, err := r.confine(path)
	if err != nil {
		return nil, "", nil, fmt.Errorf("read file %s: %w", path, err)
	}
	f, err := os.Open(resolved)
	if err != nil {
		return nil, "", nil, fmt.Errorf("read file %s: %w", path, fileErr(err))
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, "", nil, fmt.Errorf("read file %s: %w", path, fileErr(err))
	}
	if !st.Mode().IsRegular() {
		return nil, "", nil, fmt.Errorf("read file %s: not a regular file", path)
	}
	limit := r.policy.MaxBytes
	if st.Size() > limit {
		return nil, "", nil, fmt.Errorf("read file %s: size %d bytes is over the limit of %d bytes", path, st.Size(), limit)
	}
	// The size may change between Stat and Read; read at most limit+1 bytes
	// to notice.
	buf := make([]byte, 0, st.Size()+1)
	data, err := readAllLimited(f, buf, limit)
	if err != nil {
		return nil, "", nil, fmt.Errorf("read file %s: %w", path, err)
	}
	return data, resolved, st, nil
}

// confine checks that path is allowed and returns it with symlinks resolved.
func (r *Reader) confine(path string) (string, error) {
	if !filepath.IsAbs(path) {
		return "", fmt.Errorf("path is not absolute: %w", ErrNotAllowed)
	}
	clean := filepath.Clean(path)
	if !r.underRoot(clean, false) {
		return "", r.outside()
	}
	resolved, err := filepath.EvalSymlinks(clean)
	if err != nil {
		return "", fileErr(err)
	}
	if !r.underRoot(resolved, true) {
		return "", r.outside()
	}
	return resolved, nil
}

func (r *Reader) outside() error {
	return fmt.Errorf("outside the allowed folders %v: %w", r.policy.Roots, ErrNotAllowed)
}

// underRoot reports whether p lies under (or is) a root; resolved selects
// the symlink-resolved roots.
func (r *Reader) underRoot(p string, resolved bool) bool {
	for i, root := range r.roots {
		if resolved {
			root = r.resolved[i]
			if root == "" {
				// The root did not exist when the Reader was built.
				res, err := filepath.EvalSymlinks(r.roots[i])
				if err != nil {
					continue
				}
				root = res
			}
		}
		if within(root, p) {
			return true
		}
	}
	return false
}

// within reports whether p is root or lies below it; both are clean.
func within(root, p string) bool {
	if p == root {
		return true
	}
	if !strings.HasPrefix(p, root) {
		return false
	}
	return strings.HasSuffix(root, string(filepath.Separator)) || p[len(root)] == filepath.Separator
}

func fileErr(err error) error {
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("no such file: %w", ErrNotFound)
	}
	var pe *os.PathError
	if errors.As(err, &pe) {
		// The path is already in the caller's message.
		return pe.Err
	}
	return err
}

func readAllLimited(rd io.Reader, buf []byte, limit int64) ([]byte, error) {
	lr := &io.LimitedReader{R: rd, N: limit + 1}
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := lr.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if int64(len(buf)) > limit {
			return nil, fmt.Errorf("over the limit of %d bytes", limit)
		}
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return nil, err
		}
	}
}
