package reading

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
)

// maxRedirects bounds redirect chains, as net/http's default does.
const maxRedirects = 10

// Fetch GETs an http or https URL whose host the policy allows.
//
//   - With o.ETag set it sends If-None-Match; a 304 answer returns the
//     Response together with an error wrapping ErrNotModified.
//   - 404 and 410 return an error wrapping ErrNotFound.
//   - Any other non-2xx status returns an error naming the status and the
//     start of the body, which is usually the upstream's explanation.
//   - A body over MaxBytes is an error, not a truncated read.
//   - A host outside the policy, including one reached by a redirect,
//     returns an error wrapping ErrNotAllowed before any request is sent to
//     it.
func (r *Reader) Fetch(ctx context.Context, rawURL string, o FetchOptions) (*Response, error) {
	// Only a new request can tell whether upstream changed.
	sourcesOf(ctx).MarkVolatile()
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("fetch %s: %w", rawURL, err)
	}
	if err := r.checkURL(u); err != nil {
		return nil, fmt.Errorf("fetch %s: %w", rawURL, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("fetch %s: %w", rawURL, err)
	}
	for k, v := range o.Header {
		req.Header.Set(k, v)
	}
	if o.ETag != "" {
		req.Header.Set("If-None-Match", o.ETag)
	}
	resp, err := r.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetch %s: %w", rawURL, unwrapURLError(err))
	}
	defer resp.Body.Close()
	if t := traceOf(ctx); t != nil {
		t.Requests.Add(1)
		if resp.StatusCode == http.StatusNotModified {
			t.NotModified.Add(1)
		}
	}

	out := &Response{
		Status: resp.StatusCode,
		ETag:   resp.Header.Get("ETag"),
		Header: resp.Header,
		URL:    resp.Request.URL.String(),
	}
	limit := r.policy.MaxBytes
	switch {
	case resp.StatusCode == http.StatusNotModified:
		if out.ETag == "" {
			out.ETag = o.ETag
		}
		return out, fmt.Errorf("fetch %s: status 304: %w", rawURL, ErrNotModified)
	case resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusGone:
		return nil, fmt.Errorf("fetch %s: status %d: %w", rawURL, resp.StatusCode, ErrNotFound)
	case resp.StatusCode < 200 || resp.StatusCode > 299:
		snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
		return nil, fmt.Errorf("fetch %s: status %d: %s", rawURL, resp.StatusCode, cleanSnippet(snippet))
	}
	if resp.ContentLength > limit {
		return nil, fmt.Errorf("fetch %s: body of %d bytes is over the limit of %d bytes", rawURL, resp.ContentLength, limit)
	}
	size := int64(512)
	if resp.ContentLength > 0 {
		size = resp.ContentLength + 1
	}
	body, err := readAllLimited(resp.Body, make([]byte, 0, size), limit)
	if err != nil {
		return nil, fmt.Errorf("fetch %s: body %w", rawURL, unwrapURLError(err))
	}
	out.Body = body
	return out, nil
}

// Read reads a target named either way a stage may meet it: an http(s) URL
// goes to Fetch; "file://" URLs and absolute paths go to ReadFile and come
// back as a 200 Response (options are ignored for files). Anything else is
// an error, so that a typo never falls through to an unexpected reader.
func (r *Reader) Read(ctx context.Context, target string, o FetchOptions) (*Response, error) {
	lower := strings.ToLower(target)
	switch {
	case strings.HasPrefix(lower, "http://") || strings.HasPrefix(lower, "https://"):
		return r.Fetch(ctx, target, o)
	case strings.HasPrefix(lower, "file://"):
		u, err := url.Parse(target)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", target, err)
		}
		if u.Host != "" && u.Host != "localhost" {
			return nil, fmt.Errorf("read %s: file URL names host %q; only local files can be read: %w", target, u.Host, ErrNotAllowed)
		}
		return r.readFileResponse(ctx, u.Path)
	case strings.HasPrefix(target, "/") || isWindowsAbs(target):
		return r.readFileResponse(ctx, target)
	default:
		return nil, fmt.Errorf("read %s: not an http(s) URL, file URL or absolute path", target)
	}
}

func isWindowsAbs(p string) bool {
	return len(p) > 2 && p[1] == ':' && (p[2] == '\\' || p[2] == '/') &&
		(p[0] >= 'a' && p[0] <= 'z' || p[0] >= 'A' && p[0] <= 'Z')
}

func (r *Reader) readFileResponse(ctx context.Context, path string) (*Response, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("read file %s: %w", path, err)
	}
	b, err := r.ReadFile(ctx, path)
	if err != nil {
		return nil, err
	}
	return &Response{Status: http.StatusOK, Body: b, URL: path}, nil
}

// checkURL enforces the scheme and host rules.
func (r *Reader) checkURL(u *url.URL) error {
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("scheme %q is not http or https: %w", u.Scheme, ErrNotAllowed)
	}
	if u.Host == "" {
		return fmt.Errorf("url has no host: %w", ErrNotAllowed)
	}
	if !r.HostAllowed(u) {
		return fmt.Errorf("host %s is not in the allowed hosts %v: %w", u.Host, r.policy.Hosts, ErrNotAllowed)
	}
	return nil
}

// checkRedirect is the client's CheckRedirect: every hop must obey the same
// rules as the first request, or a permitted host could bounce a read to a
// forbidden one.
func (r *Reader) checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) >= maxRedirects {
		return fmt.Errorf("stopped after %d redirects", maxRedirects)
	}
	if err := r.checkURL(req.URL); err != nil {
		return fmt.Errorf("redirect to %s: %w", req.URL, err)
	}
	return nil
}

// HostAllowed reports whether the policy allows the host (and port) of u.
// The engine uses it to check URL locations registered over the API before
// they are stored.
func (r *Reader) HostAllowed(u *url.URL) bool {
	host := strings.TrimSuffix(strings.ToLower(u.Hostname()), ".")
	port := u.Port()
	if port == "" {
		switch u.Scheme {
		case "http":
			port = "80"
		case "https":
			port = "443"
		}
	}
	for _, p := range r.hosts {
		if p.port != "" && p.port != port {
			continue
		}
		switch {
		case p.any:
			return true
		case p.suffix != "":
			if len(host) > len(p.suffix) && strings.HasSuffix(host, p.suffix) {
				return true
			}
		case p.host == host:
			return true
		}
	}
	return false
}

func parseHostPattern(s string) hostPattern {
	p := hostPattern{original: s}
	h := strings.ToLower(strings.TrimSpace(s))
	if strings.HasPrefix(h, "[") {
		// [v6]:port or [v6]
		if i := strings.IndexByte(h, ']'); i > 0 {
			rest := h[i+1:]
			h = h[1:i]
			if strings.HasPrefix(rest, ":") {
				p.port = rest[1:]
			}
		}
	} else if strings.Count(h, ":") == 1 {
		host, port, err := net.SplitHostPort(h)
		if err == nil {
			h, p.port = host, port
		}
	}
	h = strings.TrimSuffix(h, ".")
	switch {
	case h == "*":
		p.any = true
	case strings.HasPrefix(h, "*."):
		p.suffix = h[1:]
	default:
		p.host = h
	}
	return p
}

// unwrapURLError drops the *url.Error layer, whose message repeats the
// method and URL we already name, keeping the chain for errors.Is.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// cleanSnippet makes the start of an error body printable on one line.
func cleanSnippet(b []byte) string {
	s := strings.Join(strings.Fields(strings.ToValidUTF8(string(b), "\uFFFD")), " ")
	if s == "" {
		return "(empty body)"
	}
	return s
}
