package reading

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestHostAllowed(t *testing.T) {
	tests := []struct {
		hosts []string
		url   string
		want  bool
	}{
		{[]string{"example.com"}, "https://example.com/a", true},
		{[]string{"example.com"}, "http://EXAMPLE.com:8080/a", true},
		{[]string{"example.com"}, "https://example.com./a", true},
		{[]string{"example.com"}, "https://www.example.com/a", false},
		{[]string{"example.com"}, "https://example.com.evil.org/a", false},
		{[]string{"example.com"}, "https://evilexample.com/a", false},
		{[]string{"example.com:8443"}, "https://example.com:8443/a", true},
		{[]string{"example.com:8443"}, "https://example.com/a", false},
		{[]string{"example.com:443"}, "https://example.com/a", true},
		{[]string{"example.com:80"}, "https://example.com/a", false},
		{[]string{"*.example.com"}, "https://api.example.com/a", true},
		{[]string{"*.example.com"}, "https://a.b.example.com/a", true},
		{[]string{"*.example.com"}, "https://example.com/a", false},
		{[]string{"*.example.com"}, "https://badexample.com/a", false},
		{[]string{"*.example.com:8443"}, "https://api.example.com:8443/a", true},
		{[]string{"*.example.com:8443"}, "https://api.example.com/a", false},
		{[]string{"*"}, "https://anything.org/a", true},
		{[]string{"*:8080"}, "http://anything.org:8080/a", true},
		{[]string{"*:8080"}, "http://anything.org/a", false},
		{[]string{"[::1]:8080"}, "http://[::1]:8080/a", true},
		{[]string{"::1"}, "http://[::1]:9/a", true},
		{[]string{"127.0.0.1"}, "http://127.0.0.1:1234/a", true},
		{nil, "https://example.com/a", false},
		{[]string{"a.org", "example.com"}, "https://example.com/a", true},
	}
	for _, tc := range tests {
		u, err := url.Parse(tc.url)
		if err != nil {
			t.Fatal(err)
		}
		if got := New(Policy{Hosts: tc.hosts}).HostAllowed(u); got != tc.want {
			t.Errorf("hosts %v, %s: got %v, want %v", tc.hosts, tc.url, got, tc.want)
		}
	}
}

// hostOf returns the "host:port" of a test server.
func hostOf(t *testing.T, s *httptest.Server) string {
	t.Helper()
	u, err := url.Parse(s.URL)
	if err != nil {
		t.Fatal(err)
	}
	return u.Host
}

func TestFetch(t *testing.T) {
	var gotHeader atomic.Value
	var hits atomic.Int32
	mux := http.NewServeMux()
	mux.HandleFunc("/ok", func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		gotHeader.Store(r.Header.Get("Authorization"))
		if r.Header.Get("If-None-Match") == `"v1"` {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		w.Header().Set("ETag", `"v1"`)
		fmt.Fprint(w, "kind: Component")
	})
	mux.HandleFunc("/missing", http.NotFound)
	mux.HandleFunc("/gone", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusGone) })
	mux.HandleFunc("/boom", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
		fmt.Fprint(w, "upstream\nexploded "+strings.Repeat("z", 500))
	})
	mux.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, strings.Repeat("x", 200))
	})
	mux.HandleFunc("/big-chunked", func(w http.ResponseWriter, r *http.Request) {
		for range 4 {
			fmt.Fprint(w, strings.Repeat("x", 60))
			w.(http.Flusher).Flush()
		}
	})
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(2 * time.Second):
		case <-r.Context().Done():
		}
		fmt.Fprint(w, "late")
	})
	mux.HandleFunc("/slow-body", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "kind:")
		w.(http.Flusher).Flush()
		select {
		case <-time.After(2 * time.Second):
		case <-r.Context().Done():
		}
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()

	r := New(Policy{Hosts: []string{hostOf(t, srv)}, MaxBytes: 150, Timeout: 200 * time.Millisecond})
	ctx := context.Background()

	t.Run("200 with etag and headers", func(t *testing.T) {
		resp, err := r.Fetch(ctx, srv.URL+"/ok", FetchOptions{Header: map[string]string{"Authorization": "Bearer t"}})
		if err != nil {
			t.Fatal(err)
		}
		if resp.Status != 200 || resp.ETag != `"v1"` || string(resp.Body) != "kind: Component" || resp.URL != srv.URL+"/ok" {
			t.Fatalf("got %+v", resp)
		}
		if gotHeader.Load() != "Bearer t" {
			t.Fatalf("Authorization header not sent: %v", gotHeader.Load())
		}
	})
	t.Run("304 with the etag", func(t *testing.T) {
		resp, err := r.Fetch(ctx, srv.URL+"/ok", FetchOptions{ETag: `"v1"`})
		if !errors.Is(err, ErrNotModified) {
			t.Fatalf("err = %v, want ErrNotModified", err)
		}
		if resp == nil || resp.Status != 304 || resp.ETag != `"v1"` {
			t.Fatalf("resp = %+v", resp)
		}
	})

	errCases := []struct {
		name    string
		url     string
		errIs   error
		errText string
	}{
		{name: "404", url: srv.URL + "/missing", errIs: ErrNotFound, errText: "status 404"},
		{name: "410", url: srv.URL + "/gone", errIs: ErrNotFound, errText: "status 410"},
		{name: "500 names the status and the start of the body", url: srv.URL + "/boom",
			errText: "fetch " + srv.URL + "/boom: status 500: upstream exploded zzz"},
		{name: "body over the limit", url: srv.URL + "/big", errText: "over the limit of 150 bytes"},
		{name: "chunked body over the limit", url: srv.URL + "/big-chunked", errText: "over the limit of 150 bytes"},
		{name: "timeout waiting for headers", url: srv.URL + "/slow", errText: "timeout"},
		{name: "timeout reading the body", url: srv.URL + "/slow-body", errText: "timeout"},
		{name: "host not allowed", url: "http://not-allowed.invalid/x", errIs: ErrNotAllowed,
			errText: "host not-allowed.invalid is not in the allowed hosts [" + hostOf(t, srv) + "]: not allowed"},
		{name: "scheme not allowed", url: "ftp://" + hostOf(t, srv) + "/x", errIs: ErrNotAllowed},
		{name: "no host", url: "http:///x", errIs: ErrNotAllowed},
	}
	for _, tc := range errCases {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			resp, err := r.Fetch(ctx, tc.url, FetchOptions{})
			if err == nil {
				t.Fatalf("Fetch succeeded: %+v", resp)
			}
			if tc.errIs != nil && !errors.Is(err, tc.errIs) {
				t.Errorf("error %q does not wrap %v", err, tc.errIs)
			}
			if !strings.Contains(strings.ToLower(err.Error()), strings.ToLower(tc.errText)) {
				t.Errorf("error %q does not contain %q", err, tc.errText)
			}
			if !strings.Contains(err.Error(), tc.url) {
				t.Errorf("error %q does not name the URL", err)
			}
			if time.Since(start) > 1500*time.Millisecond {
				t.Errorf("took %v", time.Since(start))
			}
		})
	}

	t.Run("500 body snippet is at most 200 bytes", func(t *testing.T) {
		_, err := r.Fetch(ctx, srv.URL+"/boom", FetchOptions{})
		if n := strings.Count(err.Error(), "z"); n > 200 {
			t.Fatalf("snippet has %d z's: %q", n, err)
		}
	})
	t.Run("context cancellation", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if _, err := r.Fetch(cctx, srv.URL+"/ok", FetchOptions{}); !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
	})
}

func TestFetchRedirects(t *testing.T) {
	var forbiddenHits atomic.Int32
	forbidden := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		forbiddenHits.Add(1)
		fmt.Fprint(w, "secret")
	}))
	defer forbidden.Close()
	var allowed *httptest.Server
	allowed = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/to-forbidden":
			http.Redirect(w, r, forbidden.URL+"/x", http.StatusFound)
		case "/to-self":
			http.Redirect(w, r, allowed.URL+"/final", http.StatusMovedPermanently)
		case "/loop":
			http.Redirect(w, r, "/loop", http.StatusFound)
		default:
			fmt.Fprint(w, "final")
		}
	}))
	defer allowed.Close()
	// Both servers listen on 127.0.0.1; allowing one port only tells them
	// apart.
	r := New(Policy{Hosts: []string{hostOf(t, allowed)}})
	ctx := context.Background()

	resp, err := r.Fetch(ctx, allowed.URL+"/to-self", FetchOptions{})
	if err != nil || string(resp.Body) != "final" || resp.URL != allowed.URL+"/final" {
		t.Fatalf("redirect to an allowed host: %+v, %v", resp, err)
	}
	_, err = r.Fetch(ctx, allowed.URL+"/to-forbidden", FetchOptions{})
	if !errors.Is(err, ErrNotAllowed) {
		t.Fatalf("redirect to a forbidden host: %v, want ErrNotAllowed", err)
	}
	if !strings.Contains(err.Error(), "redirect to "+forbidden.URL+"/x") {
		t.Errorf("error %q does not name the redirect", err)
	}
	if forbiddenHits.Load() != 0 {
		t.Errorf("the forbidden host was called %d times", forbiddenHits.Load())
	}
	if _, err := r.Fetch(ctx, allowed.URL+"/loop", FetchOptions{}); err == nil || !strings.Contains(err.Error(), "redirects") {
		t.Errorf("redirect loop: %v", err)
	}
}

func TestReadDispatchHTTP(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "body")
	}))
	defer srv.Close()
	r := New(Policy{Hosts: []string{"127.0.0.1"}})
	resp, err := r.Read(context.Background(), srv.URL+"/x", FetchOptions{})
	if err != nil || string(resp.Body) != "body" {
		t.Fatalf("Read: %+v, %v", resp, err)
	}
}
