package transform

import "github.com/cdcbridge/cdcbridge/config"

// Specs lists the specs of a mapping for one direction: forward reads each
// entry's source and writes its target; reverse reads the target and
// writes the source (the key override names target columns, so it does
// not apply in reverse).
func Specs(m *config.Mapping, dir config.Direction) []Spec {
	out := make([]Spec, 0, len(m.Tables))
	for _, e := range m.Tables {
		s := Spec{Entry: e.Name(), Read: e.Source, Write: e.Target, Script: e.Transform, Key: e.Key}
		if dir == config.Reverse {
			s.Read, s.Write, s.Key = e.Target, e.Source, nil
		}
		out = append(out, s)
	}
	return out
}

// FuncName is the script function a direction calls.
func FuncName(dir config.Direction) string {
	if dir == config.Reverse {
		return "backward"
	}
	return "forward"
}
