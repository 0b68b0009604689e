package config

import (
	"fmt"
	"strings"

	"github.com/hashicorp/hcl/v2"
)

// Error is what Load and LoadFiles return for anything wrong in the
// configuration itself (as opposed to a programming error in the stage
// specs). It keeps the diagnostics and the parsed files together because
// HCL needs the files' bytes to print source snippets; callers detect it
// with errors.As to tell a bad configuration (exit status 2) from other
// failures, and may print e.Diags themselves with their own width or color.
type Error struct {
	Diags hcl.Diagnostics
	Files map[string]*hcl.File
}

// Error renders every diagnostic the way HCL's text writer does (severity,
// summary, source snippet, detail; no color, no wrapping), each preceded by
// a compiler-style "file:line:col: " prefix so that editors and terminals
// can jump to it and tests can match on it.
func (e *Error) Error() string {
	var out []string
	for _, d := range e.Diags {
		var b strings.Builder
		if d.Subject != nil {
			fmt.Fprintf(&b, "%s:%d:%d: ", d.Subject.Filename, d.Subject.Start.Line, d.Subject.Start.Column)
		}
		w := hcl.NewDiagnosticTextWriter(&b, e.Files, 0, false)
		if err := w.WriteDiagnostic(d); err != nil {
			// A strings.Builder never fails; keep the summary regardless.
			fmt.Fprintf(&b, "%s: %s", d.Summary, d.Detail)
		}
		out = append(out, strings.TrimRight(b.String(), "\n"))
	}
	return strings.Join(out, "\n\n")
}

// errorf builds an error diagnostic; subject may be nil for problems that
// have no place in a file (a missing folder, no files at all).
func errorf(subject *hcl.Range, summary, detailFormat string, args ...any) *hcl.Diagnostic {
	return &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  summary,
		Detail:   fmt.Sprintf(detailFormat, args...),
		Subject:  subject,
	}
}

// pos formats a range as "file:line", the form used in RootLocation.Pos and
// in the "first declared at" details of duplicate diagnostics.
func pos(r hcl.Range) string {
	return fmt.Sprintf("%s:%d", r.Filename, r.Start.Line)
}

// duplicate reports a second declaration of something that must be unique:
// the subject is the second one, and the detail names the first one so that
// the message points at both.
func duplicate(what string, first, second hcl.Range, rule string) *hcl.Diagnostic {
	return errorf(second.Ptr(), "duplicate "+what,
		"%s", sentence(fmt.Sprintf("%s was first declared at %s; %s", what, pos(first), rule)))
}
