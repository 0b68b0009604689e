package scripting

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/dop251/goja"
	"github.com/dop251/goja/parser"

	"github.com/catalog-pipeline/pipeline/engine"
)

// errTimeout is the interrupt value of a hook call that ran past the
// stage's timeout.
var errTimeout = errors.New("timed out")

// frame is one line of a JS stack, with the column already corrected for
// the CommonJS wrapper on line 1.
type frame struct {
	fn   string // "" for anonymous code
	file string // "" for native code
	line int
	col  int
}

func (f frame) pos() string {
	return f.file + ":" + strconv.Itoa(f.line) + ":" + strconv.Itoa(f.col)
}

func (f frame) String() string {
	switch {
	case f.file == "" && f.fn == "":
		return "native"
	case f.file == "":
		return f.fn + " (native)"
	case f.fn == "":
		return f.pos()
	default:
		return f.fn + " (" + f.pos() + ")"
	}
}

// position fixes a position reported by goja: the script runs inside the
// wrapper `(function(module, exports){`, which shifts columns of its first
// line.
func (s *Stage) position(file string, line, col int) (int, int) {
	if file == s.display && line == 1 && col > len(wrapperHead) {
		col -= len(wrapperHead)
	}
	return line, col
}

func (s *Stage) framesOf(stack []goja.StackFrame) []frame {
	out := make([]frame, 0, len(stack))
	for i := range stack {
		f := &stack[i]
		p := f.Position()
		if f.SrcName() == "<native>" || p.Line == 0 {
			out = append(out, frame{fn: nativeName(f.FuncName())})
			continue
		}
		if p.Filename == preludeName {
			continue
		}
		fn := f.FuncName()
		if fn == "<anonymous>" {
			fn = ""
		}
		line, col := s.position(p.Filename, p.Line, p.Column)
		out = append(out, frame{fn: fn, file: p.Filename, line: line, col: col})
	}
	return out
}

// nativeName shortens the name goja gives a Go-implemented binding (the Go
// function's full name, such as
// "github.com/.../scripting.(*jsRuntime).emit-fm") to "emit".
func nativeName(s string) string {
	if s == "<native>" {
		return ""
	}
	s = strings.TrimSuffix(s, "-fm")
	if i := strings.LastIndexByte(s, '.'); i >= 0 && strings.Contains(s, "/") {
		s = s[i+1:]
	}
	return s
}

// stackLine matches one frame of the `stack` property goja gives Error
// objects: "\tat fn (file:1:2(3))", "\tat file:1:2(3)", "\tat fn (native)".
var stackLine = regexp.MustCompile(`^\s*at (?:(.*) \((.*):(\d+):(\d+)\(\d+\)\)|(.*):(\d+):(\d+)\(\d+\)|(.*?) ?\(?native\)?)$`)

// framesOfStack parses an Error's `stack` string: a promise rejection
// carries no Go-side stack, only the one its Error object recorded.
func (s *Stage) framesOfStack(stack string) []frame {
	var out []frame
	for _, l := range strings.Split(stack, "\n") {
		m := stackLine.FindStringSubmatch(l)
		switch {
		case m == nil, m[2] == preludeName, m[5] == preludeName:
			continue
		case m[2] != "":
			line, _ := strconv.Atoi(m[3])
			col, _ := strconv.Atoi(m[4])
			line, col = s.position(m[2], line, col)
			out = append(out, frame{fn: m[1], file: m[2], line: line, col: col})
		case m[5] != "":
			line, _ := strconv.Atoi(m[6])
			col, _ := strconv.Atoi(m[7])
			line, col = s.position(m[5], line, col)
			out = append(out, frame{file: m[5], line: line, col: col})
		default:
			out = append(out, frame{fn: nativeName(m[8])})
		}
	}
	return out
}

// scriptError builds the error a hook reports: a ProcessingError whose
// message reads "file:line:col: message" followed by the JS stack, so that
// the entity's status points straight at the offending line. The line is
// the innermost frame in the script (a throw inside a binding such as
// emit points at the script's call of it).
func (s *Stage) scriptError(name, msg string, frames []frame, cause error) *engine.ProcessingError {
	var b strings.Builder
	b.WriteString(s.display)
	for _, f := range frames {
		if f.file != "" {
			b.Reset()
			b.WriteString(f.pos())
			break
		}
	}
	b.WriteString(": ")
	b.WriteString(msg)
	for _, f := range frames {
		b.WriteString("\n    at ")
		b.WriteString(f.String())
	}
	return &engine.ProcessingError{Name: name, Message: b.String(), Cause: cause}
}

// thrown describes a thrown or rejected JS value: the engine error name
// (InputError and NotFoundError pass through, everything else is "Error"),
// the message (prefixed with the JS error name when that name would
// otherwise be lost, as in "TypeError: x is not a function") and the
// Error's own stack string, if any.
func thrown(v goja.Value) (name, msg, stack string) {
	name = engine.GeneralErrorName
	o, ok := v.(*goja.Object)
	if !ok || o.ClassName() != "Error" {
		if v == nil {
			return name, "undefined was thrown", ""
		}
		if ok {
			if s, err := fromJS(v, ""); err == nil {
				return name, "a non-Error value was thrown: " + compactJSON(s), ""
			}
		}
		return name, "a non-Error value was thrown: " + v.String(), ""
	}
	jsName := ""
	if n := o.Get("name"); n != nil && !goja.IsUndefined(n) {
		jsName = n.String()
	}
	if m := o.Get("message"); m != nil && !goja.IsUndefined(m) {
		msg = m.String()
	}
	if st := o.Get("stack"); st != nil && !goja.IsUndefined(st) {
		stack = st.String()
	}
	switch jsName {
	case engine.InputErrorName, engine.NotFoundErrorName:
		name = jsName
	case "", "Error":
	default:
		msg = jsName + ": " + msg
	}
	if msg == "" {
		msg = "an error without a message was thrown"
	}
	return name, msg, stack
}

// hookError converts what calling a hook returned as a Go error (a JS
// exception, an interrupt, a stack overflow) into a ProcessingError naming
// the script's file, line, column and stack.
func (s *Stage) hookError(hook string, err error) error {
	var (
		intr *goja.InterruptedError
		over *goja.StackOverflowError
		exc  *goja.Exception
	)
	switch {
	case errors.As(err, &intr):
		cause, _ := intr.Value().(error)
		frames := s.framesOf(intr.Stack())
		if errors.Is(cause, errTimeout) {
			return s.scriptError(engine.GeneralErrorName,
				fmt.Sprintf("%s timed out after %s (is there an endless loop, or a read that takes too long?)", hook, s.timeout),
				frames, context.DeadlineExceeded)
		}
		if cause == nil {
			cause = context.Canceled
		}
		return s.scriptError(engine.GeneralErrorName, fmt.Sprintf("%s was stopped: %v", hook, cause), frames, cause)
	case errors.As(err, &over):
		return s.scriptError(engine.GeneralErrorName,
			fmt.Sprintf("maximum call stack size (%d) exceeded in %s (endless recursion?)", s.maxStack, hook),
			s.framesOf(over.Stack()), nil)
	case errors.As(err, &exc):
		name, msg, _ := thrown(exc.Value())
		return s.scriptError(name, msg, s.framesOf(exc.Stack()), exc.Unwrap())
	}
	return s.scriptError(engine.GeneralErrorName, fmt.Sprintf("%s failed: %v", hook, err), nil, err)
}

// rejectionError converts the reason of a rejected promise.
func (s *Stage) rejectionError(hook string, reason goja.Value) error {
	name, msg, stack := thrown(reason)
	return s.scriptError(name, msg, s.framesOfStack(stack), nil)
}

// compileError is a syntax error at a position of the script.
type compileError struct {
	file      string
	line, col int
	msg       string
}

func (e *compileError) Error() string {
	return fmt.Sprintf("%s:%d:%d: %s", e.file, e.line, e.col, e.msg)
}

// at is "line:col: message", for "script x has an error at ..." messages.
func (e *compileError) at() string {
	return fmt.Sprintf("%d:%d: %s", e.line, e.col, e.msg)
}

// syntaxError extracts the first position and message from what the goja
// parser or compiler returned.
func (s *Stage) syntaxError(err error) *compileError {
	var (
		list parser.ErrorList
		one  *parser.Error
		cse  *goja.CompilerSyntaxError
		cre  *goja.CompilerReferenceError
	)
	ce := &compileError{file: s.display, line: 1, col: 1, msg: err.Error()}
	set := func(line, col int, msg string) {
		ce.line, ce.col = s.position(s.display, line, col)
		ce.msg = msg
	}
	switch {
	case errors.As(err, &list) && len(list) > 0:
		p := list[0].Position
		set(p.Line, p.Column, "SyntaxError: "+list[0].Message)
	case errors.As(err, &one):
		set(one.Position.Line, one.Position.Column, "SyntaxError: "+one.Message)
	case errors.As(err, &cse):
		if cse.File != nil {
			p := cse.File.Position(cse.Offset)
			set(p.Line, p.Column, "SyntaxError: "+cse.Message)
		} else {
			ce.msg = "SyntaxError: " + cse.Message
		}
	case errors.As(err, &cre):
		if cre.File != nil {
			p := cre.File.Position(cre.Offset)
			set(p.Line, p.Column, "ReferenceError: "+cre.Message)
		} else {
			ce.msg = "ReferenceError: " + cre.Message
		}
	}
	return ce
}
