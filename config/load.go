package config

import (
	"fmt"
	"os"
	"path/filepath"
)

// Load reads the mapping file at path and validates it; see Parse.
func Load(path string) (*Mapping, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading mapping file: %w", err)
	}
	return Parse(path, data)
}

// Parse validates data as the contents of the mapping file at path. Messages
// name the file as path is written; relative transform paths resolve against
// path's directory, and the transform files must exist and be readable.
//
// On any problem Parse returns a nil Mapping and an errors.Join of one error
// per problem, in file order, each
//
//	FILE:LINE:COL: field.path: what is wrong; how to fix it
//
// (a YAML syntax error has no column and no field path). Messages never hold
// a password, even when one was written in the wrong place.
func Parse(path string, data []byte) (*Mapping, error) {
	return parse(path, data, os.LookupEnv)
}

// LoadOffline is Load for commands that connect to no database (cdcbridge
// test): everything is checked but the DSNs, which may name environment
// variables that are not set there. The Mapping's DSNs are empty.
func LoadOffline(path string) (*Mapping, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading mapping file: %w", err)
	}
	return parseWith(path, data, os.LookupEnv, true)
}

func parse(path string, data []byte, lookup func(string) (string, bool)) (*Mapping, error) {
	return parseWith(path, data, lookup, false)
}

func parseWith(path string, data []byte, lookup func(string) (string, bool), offline bool) (*Mapping, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("resolving mapping file %s: %w", path, err)
	}
	p := &parser{file: path, dir: filepath.Dir(abs), data: data, lookup: lookup, offline: offline}
	m := &Mapping{
		Path:                 abs,
		Dir:                  p.dir,
		OnError:              PolicyHalt,
		MaxConsecutiveErrors: DefaultMaxConsecutiveErrors,
		TransformTimeout:     DefaultTransformTimeout,
		Batch:                Batch{MaxRows: DefaultBatchMaxRows, MaxDelay: DefaultBatchMaxDelay},
		Metrics:              Metrics{ReadyMaxLag: DefaultReadyMaxLag},
	}
	if root := p.document(); root != nil {
		p.top(root, m)
	}
	if len(p.probs) > 0 {
		return nil, p.err()
	}
	return m, nil
}
