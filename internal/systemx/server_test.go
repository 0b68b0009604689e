package systemx_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/catalog-pipeline/pipeline/internal/systemx"
)

// get requests path with an optional If-None-Match and returns the
// response with its body read.
func get(t *testing.T, s *systemx.Server, path, inm string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, s.URL()+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if inm != "" {
		req.Header.Set("If-None-Match", inm)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

func newServer(t *testing.T) *systemx.Server {
	t.Helper()
	s := systemx.New(systemx.DefaultRecords())
	t.Cleanup(s.Close)
	return s
}

func TestServesRecordsWithETag(t *testing.T) {
	s := newServer(t)
	resp, body := get(t, s, systemx.ServicesPath, "")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	etag := resp.Header.Get("ETag")
	if !strings.HasPrefix(etag, `"`) || !strings.HasSuffix(etag, `"`) || len(etag) < 10 {
		t.Errorf("ETag %q is not a quoted strong tag", etag)
	}
	if etag != s.ETag() {
		t.Errorf("header ETag %q, ETag() %q", etag, s.ETag())
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	var got systemx.Records
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatal(err)
	}
	want := systemx.DefaultRecords()
	if len(got.Services) != len(want.Services) || len(got.Teams) != len(want.Teams) {
		t.Fatalf("got %d services %d teams, want %d and %d", len(got.Services), len(got.Teams), len(want.Services), len(want.Teams))
	}
	if got.Services[0].ID != "svc-001" || got.Services[0].APIs[0].Name != "orders-api" || got.Teams[0].Members[0] != "alice" {
		t.Errorf("records not served as set: %+v", got.Services[0])
	}
	// The wire format is the documented one (camelCase keys).
	for _, key := range []string{`"displayName"`, `"dependsOn"`, `"apis"`, `"members"`} {
		if !strings.Contains(string(body), key) {
			t.Errorf("body lacks key %s", key)
		}
	}
	if s.Requests() != 1 || s.NotModified() != 0 || s.LastIfNoneMatch() != "" {
		t.Errorf("requests %d notModified %d lastINM %q", s.Requests(), s.NotModified(), s.LastIfNoneMatch())
	}
}

func TestIfNoneMatch(t *testing.T) {
	s := newServer(t)
	etag := s.ETag()
	for _, tc := range []struct {
		inm  string
		want int
	}{
		{etag, http.StatusNotModified},
		{"W/" + etag, http.StatusNotModified}, // weak comparison
		{`"other", ` + etag, http.StatusNotModified},
		{"*", http.StatusNotModified},
		{`"stale"`, http.StatusOK},
	} {
		resp, body := get(t, s, systemx.ServicesPath, tc.inm)
		if resp.StatusCode != tc.want {
			t.Errorf("If-None-Match %s: status %d, want %d", tc.inm, resp.StatusCode, tc.want)
		}
		if tc.want == http.StatusNotModified {
			if len(body) != 0 {
				t.Errorf("If-None-Match %s: 304 with a body of %d bytes", tc.inm, len(body))
			}
			if resp.Header.Get("ETag") != etag {
				t.Errorf("If-None-Match %s: 304 without the ETag", tc.inm)
			}
		}
		if s.LastIfNoneMatch() != tc.inm {
			t.Errorf("LastIfNoneMatch %q, want %q", s.LastIfNoneMatch(), tc.inm)
		}
	}
	if s.NotModified() != 4 || s.Requests() != 5 {
		t.Errorf("notModified %d requests %d, want 4 and 5", s.NotModified(), s.Requests())
	}
}

func TestSetChangesDataAndETag(t *testing.T) {
	s := newServer(t)
	before := s.ETag()
	// The same data keeps its ETag.
	s.Set(systemx.DefaultRecords())
	if s.ETag() != before {
		t.Errorf("ETag changed although the data did not")
	}
	recs := systemx.DefaultRecords()
	recs.Services = recs.Services[1:]
	s.Set(recs)
	if s.ETag() == before {
		t.Fatal("ETag unchanged after the data changed")
	}
	resp, body := get(t, s, systemx.ServicesPath, before)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("stale ETag answered %d, want 200", resp.StatusCode)
	}
	var got systemx.Records
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Services) != 5 || got.Services[0].ID != "svc-002" {
		t.Errorf("new data not served: %d services", len(got.Services))
	}
	// Empty records serve empty lists, not nulls.
	s.Set(systemx.Records{})
	_, body = get(t, s, systemx.ServicesPath, "")
	if !strings.Contains(string(body), `"services": []`) || !strings.Contains(string(body), `"teams": []`) {
		t.Errorf("empty records served as %s", body)
	}
}

func TestDefaultRecordsAreConsistent(t *testing.T) {
	recs := systemx.DefaultRecords()
	teams := map[string]bool{}
	for _, tm := range recs.Teams {
		teams[tm.ID] = true
	}
	ids, names := map[string]bool{}, map[string]bool{}
	for _, svc := range recs.Services {
		if ids[svc.ID] || names[svc.Name] {
			t.Errorf("duplicate service %s/%s", svc.ID, svc.Name)
		}
		ids[svc.ID], names[svc.Name] = true, true
		if !teams[svc.Team] {
			t.Errorf("%s is owned by unknown team %q", svc.ID, svc.Team)
		}
	}
	for _, svc := range recs.Services {
		for _, dep := range svc.DependsOn {
			if !ids[dep] {
				t.Errorf("%s depends on unknown %s", svc.ID, dep)
			}
		}
	}
	// Each call is a fresh copy.
	recs.Services[0].Tags[0] = "changed"
	if systemx.DefaultRecords().Services[0].Tags[0] == "changed" {
		t.Error("DefaultRecords shares slices between calls")
	}
}

func TestFail(t *testing.T) {
	s := newServer(t)
	s.Fail(http.StatusInternalServerError)
	resp, body := get(t, s, systemx.ServicesPath, "")
	if resp.StatusCode != 500 || !strings.Contains(string(body), "injected failure") {
		t.Errorf("Fail(500): %d %s", resp.StatusCode, body)
	}
	// Even a matching ETag gets the failure.
	if resp, _ := get(t, s, systemx.ServicesPath, s.ETag()); resp.StatusCode != 500 {
		t.Errorf("Fail(500) with ETag: %d", resp.StatusCode)
	}
	if resp, _ := get(t, s, "/elsewhere", ""); resp.StatusCode != 500 {
		t.Errorf("Fail(500) on another path: %d", resp.StatusCode)
	}
	s.Fail(0)
	if resp, _ := get(t, s, systemx.ServicesPath, ""); resp.StatusCode != 200 {
		t.Errorf("after Fail(0): %d", resp.StatusCode)
	}
	if s.Requests() != 4 || s.NotModified() != 0 {
		t.Errorf("requests %d notModified %d", s.Requests(), s.NotModified())
	}
}

func TestGarbage(t *testing.T) {
	s := newServer(t)
	s.Garbage(true)
	resp, body := get(t, s, systemx.ServicesPath, "")
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	var v any
	if err := json.Unmarshal(body, &v); err == nil {
		t.Errorf("garbage parsed as JSON: %.60s", body)
	}
	if resp.Header.Get("ETag") != "" {
		t.Error("garbage carries an ETag")
	}
	// Garbage is never a 304, whatever the client sends.
	if resp, _ := get(t, s, systemx.ServicesPath, s.ETag()); resp.StatusCode != 200 {
		t.Errorf("garbage with ETag: %d", resp.StatusCode)
	}
	s.Garbage(false)
	_, body = get(t, s, systemx.ServicesPath, "")
	if err := json.Unmarshal(body, &v); err != nil {
		t.Errorf("after Garbage(false): %v", err)
	}
}

func TestHang(t *testing.T) {
	s := newServer(t)
	s.Hang(200 * time.Millisecond)
	start := time.Now()
	if resp, _ := get(t, s, systemx.ServicesPath, ""); resp.StatusCode != 200 {
		t.Errorf("status %d", resp.StatusCode)
	}
	if d := time.Since(start); d < 200*time.Millisecond {
		t.Errorf("answered after %v, want at least 200ms", d)
	}

	// A client that gives up is not kept waiting, and neither is Close.
	s.Hang(time.Hour)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.URL()+systemx.ServicesPath, nil)
	_, err := http.DefaultClient.Do(req)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("hanging request: err %v, want deadline exceeded", err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		// Left hanging on purpose; Close must cut it off.
		resp, err := http.Get(s.URL() + systemx.ServicesPath)
		if err == nil {
			resp.Body.Close()
		}
	})
	for s.Requests() < 3 {
		time.Sleep(time.Millisecond)
	}
	done := make(chan struct{})
	go func() { s.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close blocked on a hanging request")
	}
	wg.Wait()
}

func TestOtherPathsAndMethods(t *testing.T) {
	s := newServer(t)
	resp, body := get(t, s, "/api/v2/services", "")
	if resp.StatusCode != 404 || !strings.Contains(string(body), `"error"`) {
		t.Errorf("unknown path: %d %s", resp.StatusCode, body)
	}
	resp, err := http.Post(s.URL()+systemx.ServicesPath, "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 405 || resp.Header.Get("Allow") != "GET, HEAD" {
		t.Errorf("POST: %d Allow %q", resp.StatusCode, resp.Header.Get("Allow"))
	}
}

func TestConcurrentUse(t *testing.T) {
	s := newServer(t)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for j := range 10 {
				recs := systemx.DefaultRecords()
				recs.Services = recs.Services[:(i+j)%6+1]
				s.Set(recs)
				resp, err := http.Get(s.URL() + systemx.ServicesPath)
				if err != nil {
					t.Error(err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				_ = s.ETag()
			}
		})
	}
	wg.Wait()
	if s.Requests() != 80 {
		t.Errorf("requests %d, want 80", s.Requests())
	}
}
