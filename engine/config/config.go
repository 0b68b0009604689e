// Package config loads the HCL pipeline files into a runnable
// engine.Config.
//
// The engine never imports the stages; this package is where stage types
// (engine.StageSpec, given in Options) meet the files that use them. Each
// StageSpec's Fields become the hcldec schema of its stage blocks, so that
// the same spec that documents a stage also decodes and validates it, and
// every problem is an HCL diagnostic with a source range.
//
// Loading is all-or-nothing: either every file is good and a Config is
// returned, or an *Error lists every problem found in one pass. A caller
// that reloads keeps its last good Config on error.
package config

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/agext/levenshtein"
	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
	ctyjson "github.com/zclconf/go-cty/cty/json"

	"github.com/catalog-pipeline/pipeline/engine"
	"github.com/catalog-pipeline/pipeline/reading"
)

// Options wire the loader to the rest of the program. They are options
// rather than globals so that tests (and a `pipeline lint` run) can load
// files with fake stages and a fake environment.
type Options struct {
	// Specs are the stage types a `stage` block may name, by
	// StageSpec.Name; config never imports the stages itself.
	Specs []engine.StageSpec
	// Logger is handed, tagged with "pipeline" and "stage", to every stage
	// constructor; nil means slog.Default().
	Logger *slog.Logger
	// LookupEnv backs the env() function; nil means os.LookupEnv. Tests
	// inject a map so that they neither depend on nor change the process
	// environment.
	LookupEnv func(string) (string, bool)
}

// Load reads every *.hcl file directly in dir (sorted by name, not
// recursive: subfolders are free for fixtures and scripts) and builds the
// configuration from all of them together, as if they were one file. Blocks
// keep file-then-source order, which is the order pipelines are listed and
// stages run.
//
// Problems in the configuration, including a missing or empty folder, are
// returned as *Error; any other error is a programming error in Options.
func Load(dir string, o Options) (*engine.Config, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		detail := err.Error()
		if errors.Is(err, fs.ErrNotExist) {
			detail = fmt.Sprintf("The folder %s does not exist.", dir)
		}
		return nil, &Error{Diags: hcl.Diagnostics{errorf(nil, "cannot read configuration folder", "%s", detail)}}
	}
	var files []string
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".hcl") && !e.IsDir() {
			files = append(files, filepath.Join(dir, e.Name()))
		}
	}
	if len(files) == 0 {
		return nil, &Error{Diags: hcl.Diagnostics{errorf(nil, "no configuration files",
			"The folder %s holds no *.hcl file; a configuration needs at least one pipeline block.", dir)}}
	}
	return LoadFiles(files, o)
}

// LoadFiles builds the configuration from the given files, in the given
// order. Paths in diagnostics and RootLocation.Pos are the names as given;
// Config.Files holds them made absolute, for a watcher that may outlive the
// working directory.
func LoadFiles(files []string, o Options) (*engine.Config, error) {
	l, err := newLoader(o)
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, &Error{Diags: hcl.Diagnostics{errorf(nil, "no configuration files",
			"No *.hcl file was given; a configuration needs at least one pipeline block.")}}
	}
	return l.load(files)
}

// stageMeta is the part of a stage block that belongs to the loader, not
// to the stage type.
var stageMeta = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{{Name: "type"}}}

// ScriptStageType is the stage type of JavaScript stages. A stage block that
// sets a `script` attribute and no `type` has this type, so that
// `stage "system-x" { script = "..." }` reads naturally.
const ScriptStageType = "script"

var scriptProbe = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{{Name: ScriptStageType}}}

var topSchema = &hcl.BodySchema{Blocks: []hcl.BlockHeaderSchema{
	{Type: "engine"},
	{Type: "pipeline", LabelNames: []string{"name"}},
}}

var pipelineSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "allow_files"}, {Name: "allow_hosts"}, {Name: "interval"}, {Name: "jitter"}},
	Blocks: []hcl.BlockHeaderSchema{
		{Type: "location", LabelNames: []string{"type"}},
		{Type: "stage", LabelNames: []string{"name"}},
	},
}

var locationFields = []engine.Field{
	{Name: "target", Type: cty.String, Required: true, Check: checkNotEmpty},
	{Name: "optional", Type: cty.Bool, Default: cty.False},
	{Name: "interval", Type: cty.String, Check: checkInterval},
	{Name: "jitter", Type: cty.String, Check: engine.CheckDuration},
}

var engineFields = []engine.Field{
	{Name: "workers", Type: cty.Number, Check: checkPositiveInt},
	{Name: "batch_size", Type: cty.Number, Check: checkPositiveInt},
	{Name: "interval", Type: cty.String, Check: checkInterval},
	{Name: "jitter", Type: cty.String, Check: engine.CheckDuration},
	{Name: "orphans", Type: cty.String, Check: checkOrphans},
	{Name: "always_reprocess", Type: cty.Bool},
}

// loader holds the state of one Load: what was seen so far (for duplicate
// checks across files) and every diagnostic.
type loader struct {
	o         Options
	specs     map[string]engine.StageSpec
	names     []string // sorted spec names, for suggestions
	parser    *hclparse.Parser
	diags     hcl.Diagnostics
	engine    *hcl.Block
	pipelines map[string]*hcl.Block
	seen      int // pipeline blocks seen, good or bad
}

func newLoader(o Options) (*loader, error) {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.LookupEnv == nil {
		o.LookupEnv = os.LookupEnv
	}
	l := &loader{
		o:         o,
		specs:     make(map[string]engine.StageSpec, len(o.Specs)),
		parser:    hclparse.NewParser(),
		pipelines: make(map[string]*hcl.Block),
	}
	for _, s := range o.Specs {
		if s.Name == "" || s.New == nil {
			return nil, fmt.Errorf("config: stage spec %q needs a name and a constructor", s.Name)
		}
		if _, dup := l.specs[s.Name]; dup {
			return nil, fmt.Errorf("config: stage type %q is registered twice", s.Name)
		}
		s.Fields = slices.Clone(s.Fields)
		for i, f := range s.Fields {
			if f.Name == "type" {
				return nil, fmt.Errorf("config: stage type %q declares a field named \"type\", which is reserved for the stage block", s.Name)
			}
			if f.Default == cty.NilVal {
				continue
			}
			// A default of the wrong type would reach the constructor
			// unconverted; catch it here, once, rather than in a stage.
			d, err := convert.Convert(f.Default, f.Type)
			if err != nil {
				return nil, fmt.Errorf("config: stage type %q: default of field %q: %w", s.Name, f.Name, err)
			}
			s.Fields[i].Default = d
		}
		l.specs[s.Name] = s
		l.names = append(l.names, s.Name)
	}
	sort.Strings(l.names)
	return l, nil
}

func (l *loader) load(files []string) (*engine.Config, error) {
	cfg := &engine.Config{Engine: engine.DefaultSettings()}
	for _, name := range files {
		abs, err := filepath.Abs(name)
		if err != nil {
			abs = name
		}
		cfg.Files = append(cfg.Files, abs)
		f, diags := l.parser.ParseHCLFile(name)
		l.diags = append(l.diags, diags...)
		if f == nil || diags.HasErrors() {
			// A body with syntax errors decodes into spurious follow-up
			// errors; its syntax errors are enough for now.
			continue
		}
		l.file(f, filepath.Dir(abs), cfg)
	}
	if l.seen == 0 && !l.diags.HasErrors() {
		l.diags = l.diags.Append(errorf(nil, "no pipeline declared",
			"None of the files %s declares a pipeline block.", strings.Join(files, ", ")))
	}
	if l.diags.HasErrors() {
		return nil, &Error{Diags: l.diags, Files: l.parser.Files()}
	}
	for _, d := range l.diags {
		l.o.Logger.Warn("config: "+d.Summary, "detail", d.Detail, "at", subjectPos(d))
	}
	return cfg, nil
}

func subjectPos(d *hcl.Diagnostic) string {
	if d.Subject == nil {
		return ""
	}
	return pos(*d.Subject)
}

// file decodes one parsed file; dir is its absolute folder.
func (l *loader) file(f *hcl.File, dir string, cfg *engine.Config) {
	ctx := evalContext(dir, l.o.LookupEnv)
	content, diags := f.Body.Content(topSchema)
	l.diags = append(l.diags, diags...)
	for _, b := range content.Blocks {
		switch b.Type {
		case "engine":
			if l.engine != nil {
				l.diags = l.diags.Append(duplicate("engine block", l.engine.DefRange, b.DefRange, "there is at most one across all files"))
				continue
			}
			l.engine = b
			l.engineBlock(b, ctx, dir, &cfg.Engine)
		case "pipeline":
			l.seen++
			if p := l.pipeline(b, ctx, dir); p != nil {
				cfg.Pipelines = append(cfg.Pipelines, p)
			}
		}
	}
}

// engineBlock decodes the engine settings over the defaults.
func (l *loader) engineBlock(b *hcl.Block, ctx *hcl.EvalContext, dir string, s *engine.Settings) {
	v, ok, diags := decodeFields(b.Body, engineFields, ctx, dir, b.DefRange)
	l.diags = append(l.diags, diags...)
	if !ok {
		return
	}
	if n := v["workers"]; !n.IsNull() {
		s.Workers = toInt(n)
	}
	if n := v["batch_size"]; !n.IsNull() {
		s.BatchSize = toInt(n)
	}
	if r := refreshOf(v["interval"], v["jitter"], &s.Refresh); r != nil {
		s.Refresh = *r
	}
	if o := v["orphans"]; !o.IsNull() {
		s.Orphans = o.AsString()
	}
	if a := v["always_reprocess"]; !a.IsNull() {
		s.AlwaysReprocess = a.True()
	}
}

// refreshOf decodes an interval/jitter pair; nil when neither is set, so
// that the schedule is inherited. A jitter left out is half the interval,
// like Backstage's [d, 1.5·d] rule; a jitter alone keeps the inherited
// interval.
func refreshOf(interval, jitter cty.Value, inherit *engine.Refresh) *engine.Refresh {
	iSet := interval != cty.NilVal && !interval.IsNull()
	jSet := jitter != cty.NilVal && !jitter.IsNull()
	if !iSet && !jSet {
		return nil
	}
	r := engine.Refresh{}
	if inherit != nil {
		r = *inherit
	}
	if iSet {
		if interval.AsString() == "off" {
			return &engine.Refresh{Off: true}
		}
		r.Off = false
		r.Interval, _ = time.ParseDuration(interval.AsString())
		r.Jitter = r.Interval / 2
	}
	if jSet {
		r.Jitter, _ = time.ParseDuration(jitter.AsString())
	}
	return &r
}

// pipeline decodes one pipeline block and builds its stages. It returns nil
// when the block is a duplicate; otherwise a best-effort pipeline whose
// errors are in l.diags.
func (l *loader) pipeline(b *hcl.Block, ctx *hcl.EvalContext, dir string) *engine.Pipeline {
	name := b.Labels[0]
	dup := false
	if first, ok := l.pipelines[name]; ok {
		l.diags = l.diags.Append(duplicate(fmt.Sprintf("pipeline %q", name), first.DefRange, b.DefRange, "pipeline names are unique across all files"))
		dup = true
	} else {
		l.pipelines[name] = b
	}
	if name == "" {
		l.diags = l.diags.Append(errorf(b.LabelRanges[0].Ptr(), "empty pipeline name", "A pipeline needs a name."))
	}
	content, diags := b.Body.Content(pipelineSchema)
	l.diags = append(l.diags, diags...)
	p := &engine.Pipeline{Name: name}
	p.Refresh = l.pipelineRefresh(content, ctx, b)

	allowFiles, filesSet := l.stringList(content.Attributes["allow_files"], ctx)
	allowHosts, hostsSet := l.stringList(content.Attributes["allow_hosts"], ctx)
	for i, f := range allowFiles {
		allowFiles[i] = resolvePath(dir, f)
	}

	// Locations, and the confinement they imply when none is given.
	var defFiles, defHosts []string
	locs := make(map[string]*hcl.Block)
	var stages []*hcl.Block
	for _, blk := range content.Blocks {
		if blk.Type == "stage" {
			stages = append(stages, blk)
			continue
		}
		loc, ok := l.location(blk, ctx, dir)
		if !ok {
			continue
		}
		key := loc.Location.String()
		if first, seen := locs[key]; seen {
			l.diags = l.diags.Append(duplicate(fmt.Sprintf("location %q", key), first.DefRange, blk.DefRange, "a pipeline reads each location once"))
			continue
		}
		locs[key] = blk
		p.Locations = append(p.Locations, loc)
		switch loc.Location.Type {
		case "file":
			defFiles = appendNew(defFiles, fileRoot(loc.Location.Target))
		case "url":
			if u, err := url.Parse(loc.Location.Target); err == nil {
				defHosts = appendNew(defHosts, strings.ToLower(u.Host))
			}
		}
	}
	p.AllowFiles, p.AllowHosts = defFiles, defHosts
	if filesSet {
		p.AllowFiles = allowFiles
	}
	if hostsSet {
		p.AllowHosts = allowHosts
	}
	reader := reading.New(reading.Policy{Roots: p.AllowFiles, Hosts: p.AllowHosts})
	p.Reader = reader
	// The fingerprint covers everything a stage is built from; the HCL
	// around it (comments, locations, schedules) does not change results.
	fp := sha256.New()
	for _, part := range [][]string{{name}, p.AllowFiles, {"\x00"}, p.AllowHosts, {"\x00"}} {
		for _, s := range part {
			fmt.Fprintf(fp, "%d:%s", len(s), s)
		}
	}

	names := make(map[string]*hcl.Block)
	for _, blk := range stages {
		sname := blk.Labels[0]
		if first, seen := names[sname]; seen {
			l.diags = l.diags.Append(duplicate(fmt.Sprintf("stage %q", sname), first.DefRange, blk.DefRange, "stage names are unique within a pipeline"))
			continue
		}
		names[sname] = blk
		if st, info, sig := l.stage(name, blk, ctx, dir, reader); st != nil {
			p.Stages = append(p.Stages, st)
			p.StageInfo = append(p.StageInfo, info)
			fmt.Fprintf(fp, "%d:%s", len(sig), sig)
		}
	}
	p.Fingerprint = hex.EncodeToString(fp.Sum(nil))
	if dup {
		return nil
	}
	return p
}

// pipelineRefresh decodes a pipeline's interval and jitter attributes.
func (l *loader) pipelineRefresh(content *hcl.BodyContent, ctx *hcl.EvalContext, b *hcl.Block) *engine.Refresh {
	vals := map[string]cty.Value{"interval": cty.NullVal(cty.String), "jitter": cty.NullVal(cty.String)}
	checks := map[string]func(cty.Value) error{"interval": checkInterval, "jitter": engine.CheckDuration}
	for name := range vals {
		a := content.Attributes[name]
		if a == nil {
			continue
		}
		v, diags := a.Expr.Value(ctx)
		l.diags = append(l.diags, diags...)
		if diags.HasErrors() {
			continue
		}
		sv, err := convert.Convert(v, cty.String)
		if err == nil && !sv.IsNull() {
			err = checks[name](sv)
		}
		if err != nil {
			l.diags = l.diags.Append(errorf(a.Expr.Range().Ptr(), fmt.Sprintf("invalid value for %q", name), "%s", sentence(err.Error())))
			continue
		}
		vals[name] = sv
	}
	if vals["interval"].IsNull() && !vals["jitter"].IsNull() {
		l.diags = l.diags.Append(errorf(b.DefRange.Ptr(), "jitter without interval",
			"Set interval together with jitter in a pipeline block; the jitter alone is not applied."))
	}
	return refreshOf(vals["interval"], vals["jitter"], nil)
}

// location decodes one location block. File targets are made absolute
// against the HCL file's folder (globs kept); other targets are verbatim.
func (l *loader) location(b *hcl.Block, ctx *hcl.EvalContext, dir string) (engine.RootLocation, bool) {
	typ := b.Labels[0]
	v, ok, diags := decodeFields(b.Body, locationFields, ctx, dir, b.DefRange)
	l.diags = append(l.diags, diags...)
	if !ok {
		return engine.RootLocation{}, false
	}
	target := v["target"].AsString()
	targetRange := b.DefRange
	if attrs, _ := b.Body.JustAttributes(); attrs["target"] != nil {
		targetRange = attrs["target"].Expr.Range()
	}
	switch typ {
	case "":
		l.diags = l.diags.Append(errorf(b.LabelRanges[0].Ptr(), "empty location type",
			"A location needs a type such as \"file\" or \"url\"."))
		return engine.RootLocation{}, false
	case "file":
		abs, err := filepath.Abs(resolvePath(dir, target))
		if err == nil {
			target = filepath.Clean(abs)
		}
	case "url":
		u, err := url.Parse(target)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			l.diags = l.diags.Append(errorf(targetRange.Ptr(), "invalid url location",
				"The target %q is not an absolute http or https URL.", target))
			return engine.RootLocation{}, false
		}
	}
	ref := typ + ":" + target
	loc, err := engine.ParseLocationRef(ref)
	if err != nil || loc.Type != typ {
		msg := fmt.Sprintf("location type %q is not valid", typ)
		if err != nil {
			msg = err.Error()
		}
		l.diags = l.diags.Append(errorf(b.DefRange.Ptr(), "invalid location", "%s", sentence(msg)))
		return engine.RootLocation{}, false
	}
	if v["interval"].IsNull() && !v["jitter"].IsNull() {
		l.diags = l.diags.Append(errorf(b.DefRange.Ptr(), "jitter without interval",
			"Set interval together with jitter in a location block; the jitter alone is not applied."))
	}
	return engine.RootLocation{Location: loc, Optional: v["optional"].True(), Pos: pos(b.DefRange),
		Refresh: refreshOf(v["interval"], v["jitter"], nil)}, true
}

// stage decodes one stage block and builds the stage; nil when anything
// is wrong, with the reasons in l.diags.
func (l *loader) stage(pipeline string, b *hcl.Block, ctx *hcl.EvalContext, dir string, reader *reading.Reader) (engine.Stage, engine.StageInfo, string) {
	name := b.Labels[0]
	if name == "" {
		l.diags = l.diags.Append(errorf(b.LabelRanges[0].Ptr(), "empty stage name", "A stage needs a name."))
		return nil, engine.StageInfo{}, ""
	}
	meta, rest, diags := b.Body.PartialContent(stageMeta)
	l.diags = append(l.diags, diags...)
	typ, typRange := name, b.LabelRanges[0]
	if a := meta.Attributes["type"]; a != nil {
		typRange = a.Expr.Range()
		v, diags := a.Expr.Value(ctx)
		l.diags = append(l.diags, diags...)
		if diags.HasErrors() {
			return nil, engine.StageInfo{}, ""
		}
		s, err := convert.Convert(v, cty.String)
		if err != nil || s.IsNull() || !s.IsKnown() {
			l.diags = l.diags.Append(&hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "invalid stage type",
				Detail:   "The stage type must be a string naming a known stage type.",
				Subject:  typRange.Ptr(),
				Context:  a.Range.Ptr(),
			})
			return nil, engine.StageInfo{}, ""
		}
		typ = s.AsString()
	} else if probe, _, _ := b.Body.PartialContent(scriptProbe); probe.Attributes[ScriptStageType] != nil {
		// A stage with a script is a JavaScript stage, whatever its name.
		typ = ScriptStageType
	}
	spec, ok := l.specs[typ]
	if !ok {
		detail := ""
		if s := suggest(typ, l.names); s != "" {
			detail = fmt.Sprintf("Did you mean %q? ", s)
		}
		if len(l.names) == 0 {
			detail += "No stage types are registered."
		} else {
			detail += "Known stage types: " + strings.Join(l.names, ", ") + "."
		}
		l.diags = l.diags.Append(errorf(typRange.Ptr(), fmt.Sprintf("unknown stage type %q", typ), "%s", detail))
		return nil, engine.StageInfo{}, ""
	}
	settings, ok, diags := decodeFields(rest, spec.Fields, ctx, dir, b.DefRange)
	l.diags = append(l.diags, diags...)
	if !ok {
		return nil, engine.StageInfo{}, ""
	}
	st, err := spec.New(engine.Build{
		Pipeline: pipeline,
		Stage:    name,
		Dir:      dir,
		Settings: settings,
		Reader:   reader,
		Logger:   l.o.Logger.With("pipeline", pipeline, "stage", name),
	})
	if err == nil && st == nil {
		err = fmt.Errorf("stage type %q returned no stage", typ)
	}
	if err != nil {
		l.diags = l.diags.Append(errorf(b.DefRange.Ptr(), fmt.Sprintf("cannot build stage %q", name), "%s", sentence(err.Error())))
		return nil, engine.StageInfo{}, ""
	}
	info := engine.StageInfo{Name: name, Type: typ}
	if v, ok := settings[ScriptStageType]; ok && v.Type() == cty.String && !v.IsNull() {
		info.Script = v.AsString()
	}
	// The stage's signature for the pipeline fingerprint: its name, type
	// and settings (paths resolved, defaults applied).
	sig := name + "\x00" + typ + "\x00"
	if b, err := ctyjson.Marshal(cty.ObjectVal(settings), cty.ObjectVal(settings).Type()); err == nil {
		sig += string(b)
	} else {
		// Not expected for decoded settings; never reuse results then.
		sig += fmt.Sprintf("unencodable %p", st)
	}
	return st, info, sig
}

// stringList evaluates an optional list-of-strings attribute. set is false
// when the attribute is absent or null, so that a default applies; an
// explicit empty list is set and allows nothing.
func (l *loader) stringList(a *hcl.Attribute, ctx *hcl.EvalContext) (list []string, set bool) {
	if a == nil {
		return nil, false
	}
	v, diags := a.Expr.Value(ctx)
	l.diags = append(l.diags, diags...)
	if diags.HasErrors() {
		return nil, false
	}
	v, err := convert.Convert(v, cty.List(cty.String))
	if err == nil && v.IsNull() {
		return nil, false
	}
	if err != nil || !v.IsWhollyKnown() {
		msg := "a list of strings is required"
		if err != nil {
			msg = err.Error()
		}
		l.diags = l.diags.Append(&hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Incorrect attribute value type",
			Detail:   fmt.Sprintf("Inappropriate value for attribute %q: %s.", a.Name, msg),
			Subject:  a.Expr.Range().Ptr(),
			Context:  a.Range.Ptr(),
		})
		return nil, false
	}
	list = []string{}
	for it := v.ElementIterator(); it.Next(); {
		_, e := it.Element()
		if e.IsNull() || e.AsString() == "" {
			l.diags = l.diags.Append(&hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  fmt.Sprintf("invalid value for %q", a.Name),
				Detail:   "The list must not hold empty or null strings.",
				Subject:  a.Expr.Range().Ptr(),
				Context:  a.Range.Ptr(),
			})
			continue
		}
		list = appendNew(list, e.AsString())
	}
	return list, true
}

// fileRoot is the folder a file location's target needs to be readable: the
// longest directory prefix free of glob metacharacters for a glob, the
// target's folder otherwise.
func fileRoot(target string) string {
	if !strings.ContainsAny(target, "*?[{") {
		return filepath.Dir(target)
	}
	parts := strings.Split(filepath.ToSlash(target), "/")
	i := slices.IndexFunc(parts, func(p string) bool { return strings.ContainsAny(p, "*?[{") })
	root := strings.Join(parts[:i], "/")
	if root == "" {
		root = "/"
	}
	return filepath.Clean(filepath.FromSlash(root))
}

// suggest returns the known name closest to given, or "" when none is
// close enough to be a plausible typo.
func suggest(given string, known []string) string {
	best, bestDist := "", 3
	for _, k := range known {
		if d := levenshtein.Distance(given, k, nil); d < bestDist {
			best, bestDist = k, d
		}
	}
	return best
}

func appendNew(list []string, s string) []string {
	if slices.Contains(list, s) {
		return list
	}
	return append(list, s)
}

func toInt(v cty.Value) int {
	i, _ := v.AsBigFloat().Int64()
	return int(i)
}

// checkPositiveInt is the Check of counts such as workers: a whole number
// of at least 1 that fits an int.
func checkPositiveInt(v cty.Value) error {
	f := v.AsBigFloat()
	if !f.IsInt() || f.Cmp(big.NewFloat(1)) < 0 || f.Cmp(big.NewFloat(1<<31-1)) > 0 {
		return fmt.Errorf("%s is not a whole number of at least 1", f.Text('g', -1))
	}
	return nil
}

// checkInterval accepts a duration of at least one second, or "off" (no
// periodic refresh).
func checkInterval(v cty.Value) error {
	if v.IsNull() || v.AsString() == "off" {
		return nil
	}
	if err := engine.CheckDuration(v); err != nil {
		return fmt.Errorf(`%w, or "off"`, err)
	}
	if d, _ := time.ParseDuration(v.AsString()); d < time.Second {
		return fmt.Errorf("%q is shorter than one second", v.AsString())
	}
	return nil
}

// checkOrphans accepts the orphan strategies.
func checkOrphans(v cty.Value) error {
	if v.IsNull() {
		return nil
	}
	switch v.AsString() {
	case engine.OrphansDelete, engine.OrphansKeep:
		return nil
	}
	return fmt.Errorf(`%q is not an orphan strategy; use "delete" or "keep"`, v.AsString())
}

// checkNotEmpty refuses "" for settings that must name something.
func checkNotEmpty(v cty.Value) error {
	if v.AsString() == "" {
		return errors.New("the value must not be empty")
	}
	return nil
}
