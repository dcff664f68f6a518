package transform

import "github.com/cdcbridge/cdcbridge/config"

// Specs lists the specs of a mapping seen from one direction: forward
// reads each entry's source and writes its target; reverse reads the
// target and writes the source. Each spec's key is the entry's key for the
// table it writes.
func Specs(v config.View) []Spec {
	m, dir := v.Mapping(), v.Direction
	out := make([]Spec, 0, len(m.Tables))
	for _, e := range m.Tables {
		out = append(out, Spec{Entry: e.Name(), Read: e.Reads(dir), Write: e.Writes(dir), Script: e.Transform, Key: e.WriteKey(dir)})
	}
	return out
}
