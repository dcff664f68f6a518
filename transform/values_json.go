package transform

import (
	"fmt"
	"strconv"

	"github.com/dop251/goja"

	"github.com/cdcbridge/cdcbridge/change"
)

// jsonCodec maps json and jsonb to the value JSON.parse would return, and
// writes back any JSON-able value. The parsed document is kept in the given
// value, so that a value returned unchanged, or changed in part, keeps the
// original's number literals (see json.go).
type jsonCodec struct{}

func (jsonCodec) toJS(c *conv, _ *pgType, data []byte, g *given) (goja.Value, error) {
	tree, err := parseJSON(data)
	if err != nil {
		return nil, err
	}
	if g != nil {
		g.tree = tree
	}
	return c.jsonToJS(tree), nil
}

func (jsonCodec) same(_ *conv, v goja.Value, _ *pgType, data []byte, g *given) bool {
	var tree *jnode
	if g != nil {
		tree = g.tree
	}
	if tree == nil {
		var err error
		if tree, err = parseJSON(data); err != nil {
			return false
		}
	}
	return jsonSame(v, tree, 0)
}

func (jsonCodec) encode(c *conv, v goja.Value, _ *pgType, g *given) ([]byte, error) {
	var tree *jnode
	if g != nil && g.typ.isJSON() && g.val.Kind == change.Text {
		tree = g.tree
		if tree == nil {
			tree, _ = parseJSON(g.val.Data)
		}
	}
	if o, ok := v.(*goja.Object); ok {
		if _, isFn := goja.AssertFunction(o); isFn {
			return nil, wrongType(v, "a JSON-able value")
		}
	}
	if _, ok := v.(*goja.Symbol); ok {
		return nil, wrongType(v, "a JSON-able value")
	}
	return appendJSON(nil, v, tree, 0, c.exactKeys)
}

// exactKeys returns an error when one of o's own enumerable keys holds a
// lone surrogate. Object.Keys hands such a key to Go with U+FFFD in its
// place, under which the member cannot be read back; the runtime's own
// Object.keys returns the keys as JavaScript strings.
func (c *conv) exactKeys(o *goja.Object) error {
	if c.keys == nil {
		return nil
	}
	res, err := c.keys(goja.Undefined(), o)
	if err != nil {
		return err
	}
	arr, ok := res.(*goja.Object)
	if !ok {
		return nil
	}
	for i, n := 0, arrayLen(arr); i < n; i++ {
		k := arr.Get(strconv.Itoa(i))
		if err := checkSurrogates(k, k.String()); err != nil {
			return fmt.Errorf("member name: %w", err)
		}
	}
	return nil
}
