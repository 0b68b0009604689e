package builtin

import (
	"context"
	"net/url"
	"regexp"
	"strings"

	"github.com/catalog-pipeline/pipeline/catalog"
	"github.com/catalog-pipeline/pipeline/engine"
)

// AnnotateLocationSpec registers the `annotate-location` stage, Backstage's
// AnnotateLocationEntityProcessor. It records where an entity came from
// (managed-by-location, managed-by-origin-location) and, for entities read
// from URLs, where a person can view, edit and browse its source, which is
// what Backstage's UI links to. Values an entity already carries win, so a
// source can point "edit" somewhere else on purpose.
var AnnotateLocationSpec = engine.StageSpec{
	Name:    "annotate-location",
	Summary: "Adds managed-by-location, origin, view-url, edit-url and source-location annotations, keeping the entity's own values.",
	New: func(b engine.Build) (engine.Stage, error) {
		return &annotateLocation{name: b.Stage}, nil
	},
}

type annotateLocation struct{ name string }

// Name is the stage name from HCL.
func (a *annotateLocation) Name() string { return a.name }

// PreProcessEntity merges the location annotations under the entity's own:
// an annotation the entity already has, even an empty one, is kept.
func (a *annotateLocation) PreProcessEntity(_ context.Context, e *catalog.Entity, loc engine.Location, _ engine.Emit, _ engine.Cache) (*catalog.Entity, error) {
	if loc.Type == "" {
		return e, nil
	}
	for _, kv := range locationAnnotations(loc) {
		if _, ok := e.Metadata.Annotations[kv[0]]; !ok {
			e.SetAnnotation(kv[0], kv[1])
		}
	}
	return e, nil
}

// LocationAnnotations returns the default annotations for an entity read
// from loc, as ordered key/value pairs; values that do not apply are left
// out. It is exported so that other parts (the API's validate-entity, tests)
// can show what the stage would add without running it.
func locationAnnotations(loc engine.Location) [][2]string {
	ref := loc.String()
	out := [][2]string{
		{catalog.AnnotationManagedByLocation, ref},
		{catalog.AnnotationManagedByOriginLocation, ref},
	}
	if loc.Type != "url" {
		return out
	}
	out = append(out, [2]string{catalog.AnnotationViewURL, loc.Target})
	if edit := editURL(loc.Target); edit != "" {
		out = append(out, [2]string{catalog.AnnotationEditURL, edit})
	}
	if src := sourceFolder(loc.Target); src != "" {
		out = append(out, [2]string{catalog.AnnotationSourceLocation, "url:" + src})
	}
	return out
}

// commitSHA finds a full commit hash. A URL pinned to a commit shows a
// snapshot; an edit link for it would open a page that cannot be saved, so
// Backstage leaves edit-url out.
var commitSHA = regexp.MustCompile(`[0-9a-fA-F]{40}`)

// EditURL returns the page where the file at target can be edited, or ""
// when there is none (the URL is pinned to a commit). GitHub's /blob/ and
// GitLab's /-/blob/ views have an /edit/ twin; for other hosts the best
// guess is the target itself, as Backstage does without an integration.
func editURL(target string) string {
	if commitSHA.MatchString(target) {
		return ""
	}
	u, err := url.Parse(target)
	if err != nil {
		return target
	}
	// Work on the escaped path so percent-encoding in the file name survives.
	p := u.EscapedPath()
	if i := strings.Index(p, "/-/blob/"); i >= 0 {
		return swapPath(u, p[:i]+"/-/edit/"+p[i+len("/-/blob/"):])
	}
	if isGitHubHost(u.Hostname()) {
		// /<owner>/<repo>/blob/<ref>/<path>
		parts := strings.SplitN(strings.TrimPrefix(p, "/"), "/", 4)
		if len(parts) == 4 && parts[2] == "blob" {
			return swapPath(u, "/"+parts[0]+"/"+parts[1]+"/edit/"+parts[3])
		}
	}
	return target
}

// isGitHubHost accepts github.com and GitHub Enterprise hosts named
// github.<company>, the usual convention; other hosts are not guessed at
// because /blob/ means something else on them.
func isGitHubHost(host string) bool {
	host = strings.ToLower(host)
	return host == "github.com" || host == "www.github.com" || strings.HasPrefix(host, "github.")
}

// swapPath returns u with its path replaced by an escaped path.
func swapPath(u *url.URL, escaped string) string {
	path, err := url.PathUnescape(escaped)
	if err != nil {
		return u.String()
	}
	c := *u
	c.Path = path
	c.RawPath = escaped
	return c.String()
}

// sourceFolder resolves "./" against target: the folder holding the file,
// with a trailing slash. Like Backstage's default resolver it keeps the
// query (which may select a branch) and drops the fragment.
func sourceFolder(target string) string {
	u, err := url.Parse(target)
	if err != nil || u.Scheme == "" {
		return ""
	}
	dir := u.ResolveReference(&url.URL{Path: "./"})
	dir.RawQuery = u.RawQuery
	dir.Fragment = ""
	return dir.String()
}
