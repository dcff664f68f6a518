package transform

import (
	"errors"
	"fmt"

	"github.com/dop251/goja"
)

// Scripts is a set of transforms compiled once, for every Mapper that runs
// them. A compiled program is immutable and may run in many runtimes at the
// same time, so one *Scripts is safe for concurrent use and serves the
// Mappers of every worker, and of both directions alike (a script defines
// forward and backward). Each Mapper still runs a script's top level in a
// runtime of its own: runtimes, unlike programs, are per goroutine.
type Scripts struct {
	progs map[string]*goja.Program // by path
}

// Compile reads and compiles the scripts of specs, each file once. A
// script that cannot be read or compiled is reported as New reports it,
// under the first entry that uses it, with the file, line and column of a
// syntax error; all problems are reported at once. Running a script's top
// level, and checking that it defines the function a direction calls, is
// left to New, in each Mapper's runtime.
func Compile(specs []Spec) (*Scripts, error) {
	s := &Scripts{progs: map[string]*goja.Program{}}
	var errs []error
	tried := map[string]bool{}
	for _, sp := range specs {
		if sp.Script == "" || tried[sp.Script] {
			continue
		}
		tried[sp.Script] = true
		prg, err := compile(sp.Script)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", sp.Entry, err))
			continue
		}
		s.progs[sp.Script] = prg
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return s, nil
}

// program returns the compiled script at path: s's when it holds it (s may
// be nil), else compiled now.
func (s *Scripts) program(path string) (*goja.Program, error) {
	if s != nil {
		if prg, ok := s.progs[path]; ok {
			return prg, nil
		}
	}
	return compile(path)
}
