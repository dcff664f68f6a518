package transform

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/big"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/dop251/goja"
	"github.com/dop251/goja/parser"
)

// Each script runs inside a function of its own, so that several scripts
// share one runtime without their top-level declarations colliding. The
// prefix stays on the script's first line: line numbers are the file's, and
// stack positions on line 1 are corrected by its length.
const (
	wrapPrefix = "(function(){"
	wrapSuffix = "\n;return [typeof forward === \"function\" ? forward : undefined," +
		" typeof backward === \"function\" ? backward : undefined];\n})()"
)

// checkTimeout bounds the top-level code of a script while it is loaded.
const checkTimeout = 5 * time.Second

// Check compiles the transform at path and runs its top level, in a sandbox
// of its own, to see that it defines both forward and backward functions.
// A syntax error names the file, line and column.
func Check(path string) error {
	prg, err := compile(path)
	if err != nil {
		return err
	}
	vm := newRuntime(slog.New(slog.DiscardHandler), nil)
	fns, err := load(vm, prg, path, checkTimeout)
	if err != nil {
		return err
	}
	var missing []string
	for _, name := range []string{"forward", "backward"} {
		if fns[name] == nil {
			missing = append(missing, name)
		}
	}
	switch len(missing) {
	case 1:
		return fmt.Errorf("%s: %s is not defined as a function (a transform defines both forward and backward)", path, missing[0])
	case 2:
		return fmt.Errorf("%s: neither forward nor backward is defined as a function (a transform defines both)", path)
	}
	return nil
}

// compile reads and compiles a script. It is first compiled as written so
// that syntax errors carry the file's own positions, then wrapped.
func compile(path string) (*goja.Program, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading transform: %w", err)
	}
	if _, err := parser.ParseFile(nil, path, src, 0, parser.WithDisableSourceMaps); err != nil {
		var list parser.ErrorList
		if errors.As(err, &list) && len(list) > 0 {
			e := list[0]
			more := ""
			if len(list) > 1 {
				more = fmt.Sprintf(" (and %d more)", len(list)-1)
			}
			return nil, fmt.Errorf("%s:%d:%d: syntax error: %s%s", path, e.Position.Line, e.Position.Column, e.Message, more)
		}
		return nil, fmt.Errorf("%s: syntax error: %w", path, err)
	}
	// The compiler finds a few errors the parser does not (a let declared
	// twice); it runs on the script as written for the same reason.
	if _, err := compileSource(path, string(src)); err != nil {
		var se *goja.CompilerSyntaxError
		if errors.As(err, &se) && se.File != nil {
			p := se.File.Position(se.Offset)
			return nil, fmt.Errorf("%s:%d:%d: syntax error: %s", path, p.Line, p.Column, se.Message)
		}
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return compileSource(path, wrapPrefix+string(src)+wrapSuffix)
}

// compileSource is goja.Compile with source maps off: a
// sourceMappingURL comment must not make the loader read files.
func compileSource(name, src string) (*goja.Program, error) {
	ast, err := goja.Parse(name, src, parser.WithDisableSourceMaps)
	if err != nil {
		return nil, err
	}
	return goja.CompileAST(ast, false)
}

// load runs a compiled script's top level and returns its forward and
// backward functions (nil where not defined).
func load(vm *goja.Runtime, prg *goja.Program, path string, timeout time.Duration) (map[string]goja.Callable, error) {
	var res goja.Value
	var d jsDesc
	w := newWatchdog(vm, timeout)
	defer w.timer.Stop()
	err := w.run(func() error {
		var err error
		res, err = vm.RunProgram(prg)
		if err != nil {
			// Within the time limit: describing a thrown object may
			// run the script's getters.
			d = describeJSError(err, timeout)
		}
		return err
	})
	if err != nil {
		if d.msg == "" {
			d = describeJSError(err, timeout)
		}
		msg := fmt.Sprintf("%s: loading transform: %s", path, d.msg)
		if d.stack != "" {
			msg += "\n" + d.stack
		}
		return nil, errors.New(msg)
	}
	fns := map[string]goja.Callable{}
	arr, ok := res.(*goja.Object)
	if !ok {
		return fns, nil
	}
	for i, name := range []string{"forward", "backward"} {
		if f, ok := goja.AssertFunction(arr.Get(fmt.Sprint(i))); ok {
			fns[name] = f
		}
	}
	return fns, nil
}

// newRuntime returns a bare runtime, with nothing that reaches outside it,
// plus console.log, console.warn and console.error writing to log. attrs, if
// set, returns attributes describing the change being mapped.
func newRuntime(log *slog.Logger, attrs func() []any) *goja.Runtime {
	vm := goja.New()
	// Runaway recursion ends in a RangeError instead of eating memory.
	vm.SetMaxCallStackSize(10000)
	console := vm.NewObject()
	for name, level := range map[string]slog.Level{"log": slog.LevelInfo, "warn": slog.LevelWarn, "error": slog.LevelError} {
		_ = console.Set(name, func(call goja.FunctionCall) goja.Value {
			parts := make([]string, len(call.Arguments))
			for i, a := range call.Arguments {
				parts[i] = consoleString(a)
			}
			var a []any
			if attrs != nil {
				a = attrs()
			}
			log.Log(context.Background(), level, strings.Join(parts, " "), a...)
			return goja.Undefined()
		})
	}
	_ = vm.Set("console", console)
	return vm
}

func consoleString(v goja.Value) string {
	if s, ok := prim(v).(string); ok {
		return s
	}
	if o, ok := v.(*goja.Object); ok && o.ClassName() != "Error" && o.ClassName() != "Function" {
		if b, err := appendJSON(nil, v, nil, 0, nil); err == nil {
			return string(b)
		}
	}
	return v.String()
}

type timeoutError struct{}

func (timeoutError) Error() string { return "time limit reached" }

// watchdog runs calls into a runtime under a time limit: when a call runs
// past its deadline, a timer interrupts the runtime. One timer serves every
// call; a late firing meant for an earlier call finds that call's deadline
// gone and does nothing.
type watchdog struct {
	vm       *goja.Runtime
	timeout  time.Duration
	timer    *time.Timer
	mu       sync.Mutex
	deadline time.Time // zero between calls
}

func newWatchdog(vm *goja.Runtime, timeout time.Duration) *watchdog {
	w := &watchdog{vm: vm, timeout: timeout}
	w.timer = time.AfterFunc(time.Hour, w.fire)
	w.timer.Stop()
	return w
}

func (w *watchdog) fire() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.deadline.IsZero() && !time.Now().Before(w.deadline) {
		w.vm.Interrupt(timeoutError{})
	}
}

// run calls f, which calls into the runtime. JavaScript errors that goja
// raises as panics (a getter that throws while Go reads a returned object,
// an interrupt there) come back as errors.
func (w *watchdog) run(f func() error) (err error) {
	// An interrupt that landed after the previous call ended is void.
	w.vm.ClearInterrupt()
	w.mu.Lock()
	w.deadline = time.Now().Add(w.timeout)
	w.mu.Unlock()
	w.timer.Reset(w.timeout)
	defer func() {
		w.mu.Lock()
		w.deadline = time.Time{}
		w.mu.Unlock()
		w.timer.Stop()
		if r := recover(); r != nil {
			e, ok := r.(error)
			if _, isRuntime := r.(runtime.Error); !ok || isRuntime {
				panic(r)
			}
			err = e
		}
	}()
	return f()
}

// jsDesc is a JavaScript failure put into words.
type jsDesc struct {
	msg, stack string
}

func describeJSError(err error, timeout time.Duration) jsDesc {
	var ie *goja.InterruptedError
	if errors.As(err, &ie) {
		return jsDesc{msg: fmt.Sprintf("ran longer than %s and was stopped", timeout), stack: formatStack(ie.Stack())}
	}
	var so *goja.StackOverflowError
	if errors.As(err, &so) {
		return jsDesc{msg: "exceeded the call stack limit (runaway recursion?)", stack: formatStack(so.Stack())}
	}
	var ex *goja.Exception
	if errors.As(err, &ex) {
		return jsDesc{msg: "threw " + thrown(ex.Value()), stack: formatStack(ex.Stack())}
	}
	return jsDesc{msg: err.Error()}
}

// maxThrown bounds what thrown writes for an object, in bytes.
const maxThrown = 200

// thrown writes a thrown value for an error message: a string quoted, other
// primitives as JavaScript prints them (a BigInt with its n), an Error as
// its toString ("TypeError: boom"), a function by its name, and any other
// object or array as JSON, cut at maxThrown bytes with an ellipsis. The
// JSON is JSON.stringify's, except that a BigInt is written as its digits,
// a reference back to an enclosing object as "[Circular]" and an Error
// inside as its toString, where JSON.stringify would fail or write {}; and
// no toJSON method is called (a Date is written as its ISO string).
//
// Reading an object may run the script's code (a getter, a toString): a
// throw there, or the time limit, ends the rendering with what was written
// so far.
func thrown(v goja.Value) (s string) {
	if v == nil || goja.IsUndefined(v) {
		return "undefined"
	}
	switch p := prim(v).(type) {
	case string:
		return fmt.Sprintf("%q", p)
	case *big.Int:
		return p.String() + "n"
	}
	o, ok := v.(*goja.Object)
	if !ok {
		return v.String() // a number, a boolean, null, a symbol
	}
	w := &thrownWriter{}
	defer func() {
		if r := recover(); r != nil {
			if _, ok := r.(error); !ok {
				panic(r)
			}
			if _, ok := r.(runtime.Error); ok {
				panic(r)
			}
			if len(w.buf) == 0 {
				s = "an object that threw when read"
			} else {
				s = w.String() + "... (reading it further threw)"
			}
		}
	}()
	if _, isFn := goja.AssertFunction(o); isFn {
		name, _ := prim(o.Get("name")).(string)
		if name == "" {
			name = "(anonymous)"
		}
		return "function " + name
	}
	if o.ClassName() == "Error" {
		return o.String()
	}
	w.value(o)
	return w.String()
}

// thrownWriter writes the JSON of a thrown object, up to maxThrown bytes.
type thrownWriter struct {
	buf  []byte
	path []*goja.Object // the objects being written, to see cycles
}

func (w *thrownWriter) String() string {
	if len(w.buf) <= maxThrown {
		return string(w.buf)
	}
	n := maxThrown
	for n > 0 && !utf8.RuneStart(w.buf[n]) {
		n--
	}
	return string(w.buf[:n]) + "..."
}

func (w *thrownWriter) value(v goja.Value) {
	switch p := prim(v).(type) {
	case bool:
		w.buf = strconv.AppendBool(w.buf, p)
		return
	case string:
		w.buf = appendJSONString(w.buf, p)
		return
	case int64:
		w.buf = strconv.AppendInt(w.buf, p, 10)
		return
	case float64:
		if math.IsNaN(p) || math.IsInf(p, 0) {
			w.buf = append(w.buf, "null"...)
		} else {
			w.buf = append(w.buf, v.String()...)
		}
		return
	case *big.Int:
		w.buf = p.Append(w.buf, 10)
		return
	}
	o, ok := v.(*goja.Object)
	if _, isFn := goja.AssertFunction(v); !ok || isFn {
		w.buf = append(w.buf, "null"...) // null, and what JSON leaves out
		return
	}
	for _, a := range w.path {
		if a == o {
			w.buf = append(w.buf, `"[Circular]"`...)
			return
		}
	}
	w.path = append(w.path, o)
	defer func() { w.path = w.path[:len(w.path)-1] }()
	switch o.ClassName() {
	case "Error":
		w.buf = appendJSONString(w.buf, o.String())
		return
	case "Date":
		if t, ok := o.Export().(time.Time); ok {
			w.buf = appendJSONString(w.buf, jsISOString(t))
		} else {
			w.buf = append(w.buf, "null"...)
		}
		return
	case "Array":
		w.buf = append(w.buf, '[')
		for i, n := 0, arrayLen(o); i < n && len(w.buf) <= maxThrown; i++ {
			if i > 0 {
				w.buf = append(w.buf, ',')
			}
			w.value(o.Get(strconv.Itoa(i)))
		}
		w.buf = append(w.buf, ']')
		return
	}
	w.buf = append(w.buf, '{')
	first := true
	for _, k := range o.Keys() {
		if len(w.buf) > maxThrown {
			break
		}
		mv := o.Get(k)
		if skippedInJSON(mv) {
			continue
		}
		if !first {
			w.buf = append(w.buf, ',')
		}
		first = false
		w.buf = appendJSONString(w.buf, k)
		w.buf = append(w.buf, ':')
		w.value(mv)
	}
	w.buf = append(w.buf, '}')
}

// maxFrames bounds the frames formatStack writes.
const maxFrames = 12

// formatStack writes one "at func (file:line:col)" line per frame of a
// script, leaving out native frames and folding repeats (runaway recursion).
func formatStack(frames []goja.StackFrame) string {
	var lines []string
	repeats, more := 0, 0
	flush := func() {
		if repeats > 0 {
			lines = append(lines, fmt.Sprintf("    ... the frame above %d more times", repeats))
			repeats = 0
		}
	}
	for _, f := range frames {
		p := f.Position()
		if p.Filename == "" {
			continue
		}
		col := p.Column
		if p.Line == 1 && col > len(wrapPrefix) {
			col -= len(wrapPrefix)
		}
		line := fmt.Sprintf("    at %s (%s:%d:%d)", f.FuncName(), p.Filename, p.Line, col)
		if n := len(lines); n > 0 && lines[n-1] == line {
			repeats++
			continue
		}
		flush()
		if len(lines) >= maxFrames {
			more++
			continue
		}
		lines = append(lines, line)
	}
	flush()
	if more > 0 {
		lines = append(lines, fmt.Sprintf("    ... %d more frames", more))
	}
	return strings.Join(lines, "\n")
}
