package transform

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/big"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/dop251/goja"
)

// jnode is a parsed JSON document that keeps what JavaScript loses: the
// literal text of every number, member order and duplicate keys.
type jnode struct {
	t    byte // 'z' null, 'b' boolean, 's' string, 'd' number, 'a' array, 'o' object
	b    bool
	s    string  // a string's value, a number's literal
	f    float64 // a number's value as JavaScript sees it
	keys []string
	vals []*jnode // array elements, or object members in document order
	last map[string]int
}

// member returns the value JavaScript sees for key: the last duplicate wins,
// as in JSON.parse.
func (n *jnode) member(key string) *jnode {
	if n == nil || n.t != 'o' {
		return nil
	}
	if i, ok := n.last[key]; ok {
		return n.vals[i]
	}
	return nil
}

func (n *jnode) elem(i int) *jnode {
	if n == nil || n.t != 'a' || i >= len(n.vals) {
		return nil
	}
	return n.vals[i]
}

const maxJSONDepth = 1000

func parseJSON(data []byte) (*jnode, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	n, err := parseJSONValue(dec, 0)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("invalid JSON: data after the value")
	}
	return n, nil
}

func parseJSONValue(dec *json.Decoder, depth int) (*jnode, error) {
	if depth > maxJSONDepth {
		return nil, errors.New("JSON nested too deeply")
	}
	tok, err := dec.Token()
	if err != nil {
		return nil, fmt.Errorf("invalid JSON: %w", err)
	}
	switch tok := tok.(type) {
	case nil:
		return &jnode{t: 'z'}, nil
	case bool:
		return &jnode{t: 'b', b: tok}, nil
	case string:
		return &jnode{t: 's', s: tok}, nil
	case json.Number:
		// Out of float64's range ParseFloat returns ±Inf, as JSON.parse does.
		f, _ := strconv.ParseFloat(string(tok), 64)
		return &jnode{t: 'd', s: string(tok), f: f}, nil
	case json.Delim:
		switch tok {
		case '[':
			n := &jnode{t: 'a'}
			for dec.More() {
				v, err := parseJSONValue(dec, depth+1)
				if err != nil {
					return nil, err
				}
				n.vals = append(n.vals, v)
			}
			_, err := dec.Token()
			return n, err
		case '{':
			n := &jnode{t: 'o', last: map[string]int{}}
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return nil, fmt.Errorf("invalid JSON: %w", err)
				}
				k, _ := kt.(string)
				v, err := parseJSONValue(dec, depth+1)
				if err != nil {
					return nil, err
				}
				n.last[k] = len(n.vals)
				n.keys = append(n.keys, k)
				n.vals = append(n.vals, v)
			}
			_, err := dec.Token()
			return n, err
		}
	}
	return nil, fmt.Errorf("invalid JSON: unexpected %v", tok)
}

// jsonToJS builds the value JSON.parse would return.
func (c *conv) jsonToJS(n *jnode) goja.Value {
	switch n.t {
	case 'z':
		return goja.Null()
	case 'b':
		return c.vm.ToValue(n.b)
	case 's':
		return c.vm.ToValue(n.s)
	case 'd':
		return c.vm.ToValue(n.f)
	case 'a':
		items := make([]any, len(n.vals))
		for i, v := range n.vals {
			items[i] = c.jsonToJS(v)
		}
		return c.vm.NewArray(items...)
	}
	o := c.vm.NewObject()
	for i, k := range n.keys {
		// Defined, not assigned, so that a "__proto__" member stays data.
		_ = o.DefineDataProperty(k, c.jsonToJS(n.vals[i]), goja.FLAG_TRUE, goja.FLAG_TRUE, goja.FLAG_TRUE)
	}
	return o
}

// jsonSame reports whether v is deeply equal to the document n: the same
// members (key order aside) and values, numbers compared as JavaScript sees
// them. Members whose value JSON.stringify would leave out do not count.
func jsonSame(v goja.Value, n *jnode, depth int) bool {
	if depth > maxJSONDepth {
		return false
	}
	switch n.t {
	case 'z':
		return goja.IsNull(v)
	case 'b':
		b, ok := prim(v).(bool)
		return ok && b == n.b
	case 's':
		s, ok := prim(v).(string)
		return ok && s == n.s && loneSurrogate(v, s) < 0
	case 'd':
		switch p := prim(v).(type) {
		case int64:
			return float64(p) == n.f
		case float64:
			return p == n.f
		case *big.Int:
			r, ok := new(big.Rat).SetString(n.s)
			return ok && r.IsInt() && r.Num().Cmp(p) == 0
		}
		return false
	}
	o, ok := v.(*goja.Object)
	if !ok {
		return false
	}
	if n.t == 'a' {
		if o.ClassName() != "Array" {
			return false
		}
		l := arrayLen(o)
		if l != len(n.vals) {
			return false
		}
		for i := 0; i < l; i++ {
			if !jsonSame(o.Get(strconv.Itoa(i)), n.vals[i], depth+1) {
				return false
			}
		}
		return true
	}
	if o.ClassName() != "Object" {
		return false
	}
	seen := 0
	for _, k := range o.Keys() {
		mv := o.Get(k)
		if skippedInJSON(mv) {
			continue
		}
		m := n.member(k)
		if m == nil || !jsonSame(mv, m, depth+1) {
			return false
		}
		seen++
	}
	return seen == len(n.last)
}

// skippedInJSON reports whether JSON.stringify leaves out an object member
// with this value.
func skippedInJSON(v goja.Value) bool {
	if v == nil || goja.IsUndefined(v) {
		return true
	}
	if _, ok := v.(*goja.Symbol); ok {
		return true
	}
	if o, ok := v.(*goja.Object); ok {
		_, isFn := goja.AssertFunction(o)
		return isFn
	}
	return false
}

// appendJSON writes v as JSON, the way JSON.stringify does, except that a
// number keeps the literal of orig (the document the script was given, at the
// same path) when JavaScript cannot tell them apart, NaN and Infinity are
// errors instead of null, and a BigInt is written as its digits.
//
// strict is set when the JSON is to be stored rather than logged: a lone
// surrogate is then an error, in a string and, through strict itself, which
// sees an object's member names as JavaScript has them, in a member name.
// Otherwise it is written as U+FFFD.
func appendJSON(buf []byte, v goja.Value, orig *jnode, depth int, strict func(*goja.Object) error) ([]byte, error) {
	if depth > maxJSONDepth {
		return nil, errors.New("nested too deeply (a cycle?)")
	}
	if orig != nil && orig.t == 'd' {
		if jsonSame(v, orig, depth) {
			return append(buf, orig.s...), nil
		}
	}
	switch p := prim(v).(type) {
	case nil:
		if goja.IsNull(v) {
			return append(buf, "null"...), nil
		}
	case bool:
		return strconv.AppendBool(buf, p), nil
	case string:
		if strict != nil {
			if err := checkSurrogates(v, p); err != nil {
				return nil, err
			}
		}
		return appendJSONString(buf, p), nil
	case int64:
		return strconv.AppendInt(buf, p, 10), nil
	case float64:
		if math.IsNaN(p) || math.IsInf(p, 0) {
			return nil, fmt.Errorf("%s is not a JSON number", v.String())
		}
		return append(buf, v.String()...), nil
	case *big.Int:
		return p.Append(buf, 10), nil
	}
	o, ok := v.(*goja.Object)
	if !ok {
		return nil, fmt.Errorf("a %s is not JSON", jsType(v))
	}
	switch o.ClassName() {
	case "Array":
		buf = append(buf, '[')
		l := arrayLen(o)
		for i := 0; i < l; i++ {
			if i > 0 {
				buf = append(buf, ',')
			}
			e := o.Get(strconv.Itoa(i))
			if skippedInJSON(e) {
				buf = append(buf, "null"...)
				continue
			}
			var err error
			if buf, err = appendJSON(buf, e, orig.elem(i), depth+1, strict); err != nil {
				return nil, err
			}
		}
		return append(buf, ']'), nil
	case "Date":
		t, ok := o.Export().(time.Time)
		if !ok {
			return append(buf, "null"...), nil // JSON.stringify(new Date(NaN))
		}
		return appendJSONString(buf, jsISOString(t)), nil
	case "Function":
		return nil, errors.New("a function is not JSON")
	}
	buf = append(buf, '{')
	first := true
	keys := o.Keys()
	if strict != nil {
		for _, k := range keys {
			if strings.ContainsRune(k, utf8.RuneError) {
				if err := strict(o); err != nil {
					return nil, err
				}
				break
			}
		}
	}
	for _, k := range keys {
		mv := o.Get(k)
		if skippedInJSON(mv) {
			continue
		}
		if !first {
			buf = append(buf, ',')
		}
		first = false
		buf = appendJSONString(buf, k)
		buf = append(buf, ':')
		var err error
		if buf, err = appendJSON(buf, mv, orig.member(k), depth+1, strict); err != nil {
			return nil, err
		}
	}
	return append(buf, '}'), nil
}

const hexDigits = "0123456789abcdef"

// appendJSONString quotes s as JSON.stringify does.
func appendJSONString(buf []byte, s string) []byte {
	buf = append(buf, '"')
	start := 0
	for i := 0; i < len(s); {
		b := s[i]
		if b >= 0x20 && b != '"' && b != '\\' {
			if b < utf8.RuneSelf {
				i++
				continue
			}
			_, size := utf8.DecodeRuneInString(s[i:])
			i += size
			continue
		}
		buf = append(buf, s[start:i]...)
		switch b {
		case '"', '\\':
			buf = append(buf, '\\', b)
		case '\b':
			buf = append(buf, '\\', 'b')
		case '\f':
			buf = append(buf, '\\', 'f')
		case '\n':
			buf = append(buf, '\\', 'n')
		case '\r':
			buf = append(buf, '\\', 'r')
		case '\t':
			buf = append(buf, '\\', 't')
		default:
			buf = append(buf, '\\', 'u', '0', '0', hexDigits[b>>4], hexDigits[b&0xf])
		}
		i++
		start = i
	}
	buf = append(buf, s[start:]...)
	return append(buf, '"')
}

// jsISOString is Date.prototype.toISOString.
func jsISOString(t time.Time) string {
	t = t.UTC()
	y := t.Year()
	if y >= 0 && y <= 9999 {
		return t.Format("2006-01-02T15:04:05.000Z")
	}
	sign := '+'
	if y < 0 {
		sign, y = '-', -y
	}
	return fmt.Sprintf("%c%06d", sign, y) + t.Format("-01-02T15:04:05.000Z")
}
