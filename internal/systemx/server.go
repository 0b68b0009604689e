// Package systemx is a fake System-X for tests: an in-memory HTTP server
// that speaks System-X's inventory API and can be told to misbehave, so
// that the System-X processor (scripts/system-x.js) can be tested end to
// end against the failures a real upstream has: changed data, errors, slow
// answers and garbage.
//
// # The System-X API (version 1)
//
// System-X is an in-house service inventory. Its API has one resource.
//
//	GET /api/v1/services
//
// answers 200 with a JSON document listing every service and every team:
//
//	{
//	  "services": [
//	    {
//	      "id":          "svc-001",            // stable, opaque id
//	      "name":        "orders",             // catalog-safe name, unique
//	      "displayName": "Orders",
//	      "description": "Takes and tracks customer orders.",
//	      "team":        "rockets",            // id of a team below
//	      "tier":        "gold",               // gold | silver | bronze
//	      "lifecycle":   "production",         // experimental | production | deprecated
//	      "kind":        "service",            // service | website | library
//	      "repo":        "https://git.example/rockets/orders",
//	      "dependsOn":   ["svc-002"],          // ids of other services
//	      "apis": [
//	        {"name": "orders-api", "type": "openapi", "spec": "openapi: 3.0.0\n..."}
//	      ],
//	      "tags":        ["go"]
//	    }
//	  ],
//	  "teams": [
//	    {"id": "rockets", "name": "Rockets", "members": ["alice"]}
//	  ]
//	}
//
// Caching follows HTTP: every 200 carries a strong ETag derived from the
// content of the document, so it changes exactly when the data does. A
// request whose If-None-Match names the current ETag (or "*") is answered
// 304 Not Modified with no body; that is what makes a refresh that finds
// nothing new cost the upstream almost nothing. Other paths answer 404 and
// other methods 405, each with a JSON body {"error": "..."}.
//
// # The fake
//
// Server serves that API from Records held in memory. Set replaces the
// data; Fail, Hang and Garbage inject failures until cleared; Requests,
// NotModified and LastIfNoneMatch let a test assert what the client sent.
// All methods are safe for concurrent use with the requests being served.
package systemx

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"
)

// ServicesPath is the path of the one resource of the System-X API.
const ServicesPath = "/api/v1/services"

// Records is the whole System-X inventory: the body of GET /api/v1/services.
type Records struct {
	Services []Service `json:"services"`
	Teams    []Team    `json:"teams"`
}

// Service is one service record. Kind is System-X's own word for what it
// is ("service", "website" or "library"), which happens to match the
// Backstage component types the processor maps it to.
type Service struct {
	ID          string   `json:"id"`
	Name        string   `json:"name"`
	DisplayName string   `json:"displayName,omitempty"`
	Description string   `json:"description,omitempty"`
	Team        string   `json:"team"`
	Tier        string   `json:"tier,omitempty"`
	Lifecycle   string   `json:"lifecycle"`
	Kind        string   `json:"kind"`
	Repo        string   `json:"repo,omitempty"`
	DependsOn   []string `json:"dependsOn,omitempty"`
	APIs        []API    `json:"apis,omitempty"`
	Tags        []string `json:"tags,omitempty"`
}

// API is an interface a service provides; Spec is the definition text
// (OpenAPI, AsyncAPI, GraphQL SDL...) as System-X stores it.
type API struct {
	Name string `json:"name"`
	Type string `json:"type"`
	Spec string `json:"spec"`
}

// Team is a team that owns services. Members are System-X user names.
type Team struct {
	ID      string   `json:"id"`
	Name    string   `json:"name"`
	Members []string `json:"members,omitempty"`
}

// Server is a running fake System-X. Build it with New and stop it with
// Close (tests usually defer or t.Cleanup it).
type Server struct {
	srv *httptest.Server

	mu       sync.Mutex
	body     []byte // the encoded Records
	etag     string // strong ETag of body, quoted
	fail     int    // status to answer with; 0 = behave
	hang     time.Duration
	garbage  bool
	requests int
	notMod   int
	lastINM  string
}

// New starts a fake System-X serving records on a loopback address.
func New(records Records) *Server {
	s := &Server{}
	s.Set(records)
	mux := http.NewServeMux()
	mux.HandleFunc(ServicesPath, s.services)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.count(r)
		if s.misbehave(w, r) {
			return
		}
		writeError(w, http.StatusNotFound, "no such resource: "+r.URL.Path)
	})
	s.srv = httptest.NewServer(mux)
	return s
}

// URL is the base URL of the server, such as "http://127.0.0.1:41234";
// the API lives under it at ServicesPath. It is what a `system-x` location
// targets.
func (s *Server) URL() string { return s.srv.URL }

// Set replaces the data served. The ETag is derived from the encoded
// records, so it changes when, and only when, the data changes: setting
// the same records again keeps answering 304 to clients that are up to
// date, as a real upstream would.
func (s *Server) Set(records Records) {
	if records.Services == nil {
		records.Services = []Service{}
	}
	if records.Teams == nil {
		records.Teams = []Team{}
	}
	body, err := json.MarshalIndent(records, "", "  ")
	if err != nil {
		// Records holds only strings and slices of them; this cannot fail.
		panic("systemx: encode records: " + err.Error())
	}
	body = append(body, '\n')
	sum := sha256.Sum256(body)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.body = body
	s.etag = `"` + hex.EncodeToString(sum[:16]) + `"`
}

// ETag is the strong ETag of the data currently served, quoted as it
// appears in the header.
func (s *Server) ETag() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.etag
}

// Fail makes every request, to any path, answer status with a JSON error
// body until Fail(0) clears it. It is how a test plays an upstream outage
// (500, 503) or a revoked token (401, 403).
func (s *Server) Fail(status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fail = status
}

// Hang makes every request wait d before it is answered (with whatever the
// server would answer otherwise), until Hang(0). The wait ends early when
// the client gives up, so that a client's timeout never keeps the server,
// or the test's Close, busy.
func (s *Server) Hang(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hang = d
}

// Garbage makes the services endpoint answer 200 with a body that is not
// JSON (the truncated start of a document, as a proxy cutting a response
// short would send), until Garbage(false). Such an answer carries no ETag:
// a client must not be able to cache it.
func (s *Server) Garbage(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.garbage = on
}

// Requests counts the requests received so far, to any path, including
// those answered with an injected failure.
func (s *Server) Requests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests
}

// NotModified counts the 304 answers sent so far: the refreshes that cost
// the upstream no body.
func (s *Server) NotModified() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.notMod
}

// LastIfNoneMatch is the If-None-Match header of the last request received
// ("" when it had none), to check that a client sends the ETag it cached.
func (s *Server) LastIfNoneMatch() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastINM
}

// Close stops the server. Requests still hanging are cut off first, so
// Close returns promptly even while Hang is set.
func (s *Server) Close() {
	s.srv.CloseClientConnections()
	s.srv.Close()
}

// count records a request.
func (s *Server) count(r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests++
	s.lastINM = r.Header.Get("If-None-Match")
}

// misbehave applies the injected hang and failure; it reports whether the
// request was answered (or abandoned) already.
func (s *Server) misbehave(w http.ResponseWriter, r *http.Request) bool {
	s.mu.Lock()
	hang, fail := s.hang, s.fail
	s.mu.Unlock()
	if hang > 0 {
		t := time.NewTimer(hang)
		defer t.Stop()
		select {
		case <-t.C:
		case <-r.Context().Done():
			return true // the client left; nobody reads an answer
		}
	}
	if fail != 0 {
		writeError(w, fail, "injected failure: System-X answers "+http.StatusText(fail))
		return true
	}
	return false
}

// services serves GET /api/v1/services.
func (s *Server) services(w http.ResponseWriter, r *http.Request) {
	s.count(r)
	if s.misbehave(w, r) {
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeError(w, http.StatusMethodNotAllowed, "method "+r.Method+" is not allowed")
		return
	}
	s.mu.Lock()
	body, etag, garbage := s.body, s.etag, s.garbage
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	if garbage {
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(body[:len(body)/2])
		return
	}
	w.Header().Set("ETag", etag)
	w.Header().Set("Cache-Control", "no-cache")
	if matches(r.Header.Get("If-None-Match"), etag) {
		s.mu.Lock()
		s.notMod++
		s.mu.Unlock()
		// A 304 repeats the validators but has no body (RFC 9110 15.4.5).
		w.Header().Del("Content-Type")
		w.WriteHeader(http.StatusNotModified)
		return
	}
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		_, _ = w.Write(body)
	}
}

// matches evaluates an If-None-Match header against the current ETag. It
// uses the weak comparison RFC 9110 prescribes for If-None-Match: a W/
// prefix is ignored, so a proxy that weakened the tag still gets its 304.
func matches(header, etag string) bool {
	if header == "" {
		return false
	}
	for _, tag := range strings.Split(header, ",") {
		tag = strings.TrimSpace(tag)
		if tag == "*" || strings.TrimPrefix(tag, "W/") == etag {
			return true
		}
	}
	return false
}

// writeError answers status with System-X's error body.
func writeError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
}
