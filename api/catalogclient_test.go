package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// catalogClientDir holds the pinned @backstage/catalog-client and the node
// script that drives it (test/catalog-client).
var catalogClientDir = filepath.Join("..", "test", "catalog-client")

// TestCatalogClientE2E runs Backstage's own @backstage/catalog-client
// against a real server: test/catalog-client/e2e.mjs drives getEntities,
// getEntitiesByRefs, queryEntities (cursor paging to the end, GET and
// POST), getEntityByRef, getEntityFacets, addLocation (dryRun and real),
// getLocationById, removeLocationById, refreshEntity and validateEntity
// over the fixture catalog, with the ingestion loop running.
//
// It needs node and npm; without them it is skipped, unless $CI is set
// (CI must run it). The first run installs the locked packages with
// `npm ci` into test/catalog-client/node_modules (git-ignored); later runs
// reuse them.
func TestCatalogClientE2E(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test skipped in -short mode")
	}
	node, nodeErr := exec.LookPath("node")
	npm, npmErr := exec.LookPath("npm")
	if nodeErr != nil || npmErr != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("node and npm are required in CI: %v %v", nodeErr, npmErr)
		}
		t.Skip("node or npm not found; skipping the @backstage/catalog-client end-to-end test")
	}
	installCatalogClient(t, npm)

	const token = "e2e-token"
	f := buildFixture(t, fixtureFiles, func(o *Options) { o.Token = token })
	// The ingestion loop runs, as under `pipeline serve`, so that
	// registered locations are ingested and deleted ones go away.
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := f.eng.Serve(ctx); err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	srv := httptest.NewServer(f.h)
	t.Cleanup(func() {
		srv.Close()
		cancel()
		wg.Wait()
	})

	runCtx, stop := context.WithTimeout(context.Background(), 60*time.Second)
	defer stop()
	cmd := exec.CommandContext(runCtx, node, "e2e.mjs", srv.URL, filepath.Join(f.dir, "extra", "extra.yaml"))
	cmd.Dir = catalogClientDir
	cmd.Env = append(os.Environ(), "CATALOG_TOKEN="+token, "NODE_NO_WARNINGS=1")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err := cmd.Run()
	if err != nil {
		t.Fatalf("catalog-client end-to-end run failed (%v) after %v:\n%s", err, time.Since(start).Round(time.Millisecond), out.String())
	}
	t.Logf("catalog-client end-to-end run (%v):\n%s", time.Since(start).Round(time.Millisecond), out.String())
}

// installCatalogClient runs `npm ci` in test/catalog-client unless the
// locked @backstage/catalog-client is installed already.
func installCatalogClient(t *testing.T, npm string) {
	t.Helper()
	want, err := lockedVersion(filepath.Join(catalogClientDir, "package-lock.json"), "node_modules/@backstage/catalog-client")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := installedVersion(filepath.Join(catalogClientDir, "node_modules", "@backstage", "catalog-client", "package.json")); err == nil && got == want {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, npm, "ci", "--prefer-offline", "--no-audit", "--no-fund", "--loglevel=error")
	cmd.Dir = catalogClientDir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	if err := cmd.Run(); err != nil {
		t.Fatalf("npm ci in %s failed (%v):\n%s", catalogClientDir, err, out.String())
	}
	got, err := installedVersion(filepath.Join(catalogClientDir, "node_modules", "@backstage", "catalog-client", "package.json"))
	if err != nil || got != want {
		t.Fatalf("npm ci installed @backstage/catalog-client %q (%v), the lockfile pins %q", got, err, want)
	}
	t.Logf("npm ci installed @backstage/catalog-client %s in %v", got, time.Since(start).Round(time.Millisecond))
}

// lockedVersion reads a package's version from a package-lock.json (v2 or
// v3 "packages" map).
func lockedVersion(lockfile, pkg string) (string, error) {
	b, err := os.ReadFile(lockfile)
	if err != nil {
		return "", err
	}
	var lock struct {
		Packages map[string]struct {
			Version string `json:"version"`
		} `json:"packages"`
	}
	if err := json.Unmarshal(b, &lock); err != nil {
		return "", err
	}
	p, ok := lock.Packages[pkg]
	if !ok || p.Version == "" {
		return "", errors.New(lockfile + " does not lock " + pkg)
	}
	return p.Version, nil
}

func installedVersion(packageJSON string) (string, error) {
	b, err := os.ReadFile(packageJSON)
	if err != nil {
		return "", err
	}
	var p struct {
		Version string `json:"version"`
	}
	err = json.Unmarshal(b, &p)
	return p.Version, err
}
