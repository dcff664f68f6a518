package transform

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"math/big"
	"reflect"
	"strconv"
	"strings"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/dop251/goja"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/cdcbridge/cdcbridge/change"
)

// conv maps column values between PostgreSQL's text form and JavaScript in
// one runtime. Parsing and formatting go through pgtype where it has the
// type; floats are formatted here because pgtype writes "+Inf" and long fixed
// forms that PostgreSQL does not print, and json is parsed here because only
// a parser that keeps number literals makes exact round trips possible.
type conv struct {
	vm         *goja.Runtime
	pg         *pgtype.Map
	uint8Array goja.Value
	arrayOIDs  map[byte]uint32
	keys       goja.Callable // the runtime's own Object.keys, see exactKeys
}

// newConv must be called before any script runs in vm: it keeps built-ins
// (Uint8Array, Object.keys) that a script could replace.
func newConv(vm *goja.Runtime) *conv {
	keys, _ := goja.AssertFunction(vm.Get("Object").ToObject(vm).Get("keys"))
	return &conv{
		vm:         vm,
		pg:         pgtype.NewMap(),
		uint8Array: vm.Get("Uint8Array"),
		arrayOIDs:  map[byte]uint32{',': pgtype.TextArrayOID},
		keys:       keys,
	}
}

// given is a value handed to the script. A returned value that is deeply
// equal to it is written with these original bytes.
type given struct {
	typ  *pgType
	val  change.Value           // Null or Text, never Absent
	tree *jnode                 // json, jsonb: the parsed document, once parsed
	arr  *pgtype.Array[*string] // arrays: the parsed elements, once parsed
}

const maxSafeInt = 1<<53 - 1

var (
	typeBytes       = reflect.TypeOf([]byte(nil))
	typeArrayBuffer = reflect.TypeOf(goja.ArrayBuffer{})
)

// toJS returns the JavaScript value for g.
func (c *conv) toJS(g *given) (goja.Value, error) {
	if g.val.Kind == change.Null {
		return goja.Null(), nil
	}
	return c.textToJS(g.typ, g.val.Data, g)
}

func (c *conv) textToJS(t *pgType, data []byte, g *given) (goja.Value, error) {
	switch t.kind {
	case kBool:
		var b bool
		if err := c.pg.Scan(pgtype.BoolOID, pgtype.TextFormatCode, data, &b); err != nil {
			return nil, err
		}
		return c.vm.ToValue(b), nil
	case kInt2, kInt4, kOID, kInt8:
		var n int64
		if err := c.pg.Scan(pgtype.Int8OID, pgtype.TextFormatCode, data, &n); err != nil {
			return nil, err
		}
		if n > maxSafeInt || n < -maxSafeInt {
			return c.vm.ToValue(big.NewInt(n)), nil
		}
		return c.vm.ToValue(n), nil
	case kFloat4, kFloat8:
		// float4 too is read as float64: 0.1 stays 0.1 rather than
		// 0.10000000149011612, and writing it back to float4 rounds to the
		// same float4 (see appendPGFloat).
		var f float64
		if err := c.pg.Scan(pgtype.Float8OID, pgtype.TextFormatCode, data, &f); err != nil {
			return nil, err
		}
		return c.vm.ToValue(f), nil
	case kJSON, kJSONB:
		tree, err := parseJSON(data)
		if err != nil {
			return nil, err
		}
		if g != nil {
			g.tree = tree
		}
		return c.jsonToJS(tree), nil
	case kBytea:
		b, err := c.bytea(data)
		if err != nil {
			return nil, err
		}
		return c.vm.New(c.uint8Array, c.vm.ToValue(c.vm.NewArrayBuffer(b)))
	case kArray:
		arr, err := c.parseArray(t, data)
		if err != nil {
			return nil, err
		}
		if g != nil {
			g.arr = arr
		}
		if len(arr.Dims) == 0 {
			return c.vm.NewArray(), nil
		}
		off := 0
		return c.nest(t.elem, arr, 0, &off)
	}
	return c.vm.ToValue(string(data)), nil
}

func (c *conv) nest(elem *pgType, arr *pgtype.Array[*string], dim int, off *int) (goja.Value, error) {
	n := int(arr.Dims[dim].Length)
	items := make([]any, n)
	for i := range items {
		if dim < len(arr.Dims)-1 {
			v, err := c.nest(elem, arr, dim+1, off)
			if err != nil {
				return nil, err
			}
			items[i] = v
			continue
		}
		e := arr.Elements[*off]
		*off++
		if e == nil {
			items[i] = goja.Null()
			continue
		}
		v, err := c.textToJS(elem, []byte(*e), nil)
		if err != nil {
			return nil, fmt.Errorf("element %q: %w", *e, err)
		}
		items[i] = v
	}
	return c.vm.NewArray(items...), nil
}

// arrayOID returns the OID of a text array type with the given delimiter in
// c.pg: text[] itself for ',' and a private one otherwise (box uses ';').
func (c *conv) arrayOID(delim byte) uint32 {
	if oid, ok := c.arrayOIDs[delim]; ok {
		return oid
	}
	oid := 0xFFFFFF00 | uint32(delim)
	text, _ := c.pg.TypeForOID(pgtype.TextOID)
	c.pg.RegisterType(&pgtype.Type{Name: "_text" + string(delim), OID: oid,
		Codec: &pgtype.ArrayCodec{ElementType: text, Delimiter: delim}})
	c.arrayOIDs[delim] = oid
	return oid
}

func (c *conv) parseArray(t *pgType, data []byte) (*pgtype.Array[*string], error) {
	arr := new(pgtype.Array[*string])
	if err := c.pg.Scan(c.arrayOID(t.delim), pgtype.TextFormatCode, data, arr); err != nil {
		return nil, err
	}
	return arr, nil
}

// bytea decodes bytea text output: pgtype reads the hex format, the escape
// format (bytea_output = escape) is decoded here.
func (c *conv) bytea(data []byte) ([]byte, error) {
	if !bytes.HasPrefix(data, []byte(`\x`)) {
		return unescapeBytea(data)
	}
	var b []byte
	if err := c.pg.Scan(pgtype.ByteaOID, pgtype.TextFormatCode, data, &b); err != nil {
		return nil, err
	}
	if b == nil {
		b = []byte{}
	}
	return b, nil
}

func unescapeBytea(data []byte) ([]byte, error) {
	out := make([]byte, 0, len(data))
	for i := 0; i < len(data); i++ {
		if data[i] != '\\' {
			out = append(out, data[i])
			continue
		}
		if i+1 < len(data) && data[i+1] == '\\' {
			out = append(out, '\\')
			i++
			continue
		}
		if i+3 < len(data) {
			n, err := strconv.ParseUint(string(data[i+1:i+4]), 8, 8)
			if err == nil {
				out = append(out, byte(n))
				i += 3
				continue
			}
		}
		return nil, errors.New("invalid bytea escape")
	}
	return out, nil
}

// same reports whether v, returned by a script, is the value g it was given.
// Numbers are compared as JavaScript sees them: Number("19.90") is the
// numeric 19.90, and a Number is the bigint whose nearest double it is. For
// floats NaN is NaN and -0 is not 0.
func (c *conv) same(v goja.Value, g *given) bool {
	if g.val.Kind == change.Null {
		return goja.IsNull(v)
	}
	if goja.IsNull(v) && g.typ.isJSON() {
		// A JSON null document reaches the script as null too; returned
		// as it came, it stays the document, not SQL NULL.
		return strings.TrimSpace(string(g.val.Data)) == "null"
	}
	if goja.IsNull(v) || goja.IsUndefined(v) {
		return false
	}
	return c.sameText(v, g.typ, g.val.Data, g)
}

func (c *conv) sameText(v goja.Value, t *pgType, data []byte, g *given) bool {
	switch t.kind {
	case kBool:
		b, ok := prim(v).(bool)
		return ok && b == (string(data) == "t")
	case kInt2, kInt4, kOID:
		f, ok := number(v)
		n, err := strconv.ParseInt(string(data), 10, 64)
		return ok && err == nil && f == float64(n)
	case kInt8:
		switch p := prim(v).(type) {
		case int64, float64:
			f, _ := number(v)
			x, err := strconv.ParseFloat(string(data), 64)
			return err == nil && f == x
		case *big.Int:
			n, ok := new(big.Int).SetString(string(data), 10)
			return ok && n.Cmp(p) == 0
		case string:
			return p == string(data)
		}
		return false
	case kNumeric:
		switch p := prim(v).(type) {
		case string:
			return p == string(data)
		case int64, float64:
			f, _ := number(v)
			x, err := strconv.ParseFloat(string(data), 64)
			return err == nil && (f == x || math.IsNaN(f) && math.IsNaN(x))
		case *big.Int:
			r, ok := new(big.Rat).SetString(string(data))
			return ok && r.IsInt() && r.Num().Cmp(p) == 0
		}
		return false
	case kFloat4, kFloat8:
		f, ok := number(v)
		x, err := strconv.ParseFloat(string(data), 64)
		return ok && err == nil && (math.Float64bits(f) == math.Float64bits(x) || math.IsNaN(f) && math.IsNaN(x))
	case kJSON, kJSONB:
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
	case kBytea:
		b, ok := bytesOf(v)
		if !ok {
			return false
		}
		orig, err := c.bytea(data)
		return err == nil && bytes.Equal(b, orig)
	case kArray:
		var arr *pgtype.Array[*string]
		if g != nil {
			arr = g.arr
		}
		if arr == nil {
			var err error
			if arr, err = c.parseArray(t, data); err != nil {
				return false
			}
		}
		o, ok := v.(*goja.Object)
		if !ok || o.ClassName() != "Array" {
			return false
		}
		if len(arr.Dims) == 0 {
			return arrayLen(o) == 0
		}
		off := 0
		return c.sameNested(o, t.elem, arr, 0, &off)
	}
	s, ok := prim(v).(string)
	return ok && s == string(data) && loneSurrogate(v, s) < 0
}

func (c *conv) sameNested(o *goja.Object, elem *pgType, arr *pgtype.Array[*string], dim int, off *int) bool {
	n := int(arr.Dims[dim].Length)
	if arrayLen(o) != n {
		return false
	}
	for i := 0; i < n; i++ {
		v := o.Get(strconv.Itoa(i))
		if dim < len(arr.Dims)-1 {
			sub, ok := v.(*goja.Object)
			if !ok || sub.ClassName() != "Array" || !c.sameNested(sub, elem, arr, dim+1, off) {
				return false
			}
			continue
		}
		e := arr.Elements[*off]
		*off++
		if e == nil {
			if !goja.IsNull(v) {
				return false
			}
			continue
		}
		if goja.IsNull(v) || goja.IsUndefined(v) || !c.sameText(v, elem, []byte(*e), nil) {
			return false
		}
	}
	return true
}

// encode returns what to write for v, a value that is not undefined, in a
// column of type t. g is the value the script was given under the same
// column name, if any: when v is that value, its original bytes are written.
func (c *conv) encode(v goja.Value, t *pgType, g *given) (change.Value, error) {
	if g != nil && sameKind(g.typ, t) && c.same(v, g) {
		return g.val, nil
	}
	if goja.IsNull(v) {
		return change.Value{Kind: change.Null}, nil
	}
	data, err := c.encodeText(v, t, g)
	if err != nil {
		return change.Value{}, err
	}
	return change.Value{Kind: change.Text, Data: data}, nil
}

func (c *conv) encodeText(v goja.Value, t *pgType, g *given) ([]byte, error) {
	switch t.kind {
	case kBool:
		if b, ok := prim(v).(bool); ok {
			if b {
				return []byte("t"), nil
			}
			return []byte("f"), nil
		}
		return nil, wrongType(v, "a boolean")
	case kInt2, kInt4, kOID, kInt8:
		return c.encodeInt(v, t)
	case kNumeric:
		switch p := prim(v).(type) {
		case string:
			if !validNumeric(p) {
				return nil, fmt.Errorf("%s is not a number", describe(v))
			}
			return []byte(p), nil
		case *big.Int:
			return p.Append(nil, 10), nil
		case int64:
			return strconv.AppendInt(nil, p, 10), nil
		case float64:
			switch {
			case math.IsNaN(p):
				return []byte("NaN"), nil
			case math.IsInf(p, 1):
				return []byte("Infinity"), nil
			case math.IsInf(p, -1):
				return []byte("-Infinity"), nil
			}
			if p == 0 {
				p = 0 // numeric has no -0
			}
			return strconv.AppendFloat(nil, p, 'f', -1, 64), nil
		}
		return nil, wrongType(v, "a string, a number or a BigInt")
	case kFloat4, kFloat8:
		f, ok := number(v)
		if !ok {
			return nil, wrongType(v, "a number")
		}
		bits := 64
		if t.kind == kFloat4 {
			bits = 32
		}
		return appendPGFloat(nil, f, bits)
	case kJSON, kJSONB:
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
	case kBytea:
		b, ok := bytesOf(v)
		if !ok {
			return nil, wrongType(v, "a Uint8Array or an ArrayBuffer")
		}
		return c.pg.Encode(pgtype.ByteaOID, pgtype.TextFormatCode, b, nil)
	case kDate, kTime, kTimeTZ, kTimestamp, kTimestampTZ, kInterval:
		if s, ok := prim(v).(string); ok {
			return textBytes(v, s)
		}
		if o, ok := v.(*goja.Object); ok && o.ClassName() == "Date" && t.kind != kInterval {
			tm, ok := o.Export().(time.Time)
			if !ok {
				return nil, errors.New("got an invalid Date")
			}
			return []byte(dateText(tm, t.kind)), nil
		}
		if t.kind == kInterval {
			return nil, wrongType(v, "a string")
		}
		return nil, wrongType(v, "a string or a Date")
	case kArray:
		var hint *pgtype.Array[*string]
		if g != nil && g.val.Kind == change.Text && sameKind(g.typ, t) {
			hint = g.arr
			if hint == nil {
				hint, _ = c.parseArray(g.typ, g.val.Data)
			}
		}
		return c.encodeArray(v, t, hint)
	}
	if s, ok := prim(v).(string); ok {
		return textBytes(v, s)
	}
	return nil, wrongType(v, "a string")
}

// textBytes returns the text to write for v, a string whose Go value is s.
func textBytes(v goja.Value, s string) ([]byte, error) {
	if strings.IndexByte(s, 0) >= 0 {
		return nil, errors.New("got a string with a NUL character, which PostgreSQL text cannot hold")
	}
	if err := checkSurrogates(v, s); err != nil {
		return nil, err
	}
	return []byte(s), nil
}

// loneSurrogate returns the index, in UTF-16 code units, of the first
// surrogate in v that is not half of a pair, or -1. s is v's Go value. A
// JavaScript string may hold such a unit (a slice through the middle of an
// emoji makes one) but no UTF-8 text can: goja hands the string to Go with
// U+FFFD in its place, which would write a character the script never
// returned. Only a string whose Go value has U+FFFD needs the closer look.
func loneSurrogate(v goja.Value, s string) int {
	if !strings.ContainsRune(s, utf8.RuneError) {
		return -1
	}
	js, ok := v.(goja.String)
	if !ok {
		return -1
	}
	n := js.Length()
	for i := 0; i < n; i++ {
		switch u := js.CharAt(i); {
		case utf16.IsSurrogate(rune(u)) && u < 0xDC00:
			if i+1 < n {
				if next := js.CharAt(i + 1); utf16.IsSurrogate(rune(next)) && next >= 0xDC00 {
					i++
					continue
				}
			}
			return i
		case utf16.IsSurrogate(rune(u)):
			return i
		}
	}
	return -1
}

// checkSurrogates returns an error that shows where v, a string whose Go
// value is s, holds a lone surrogate, or nil when it holds none.
func checkSurrogates(v goja.Value, s string) error {
	i := loneSurrogate(v, s)
	if i < 0 {
		return nil
	}
	js := v.(goja.String)
	return fmt.Errorf("got string %s, which holds a lone surrogate (\\u%04X at index %d), half of a UTF-16 pair that UTF-8 text cannot hold; "+
		"remove it, or cut strings on whole characters (a slice or substring may have split one)", quoteUTF16(js, 40), js.CharAt(i), i)
}

// quoteUTF16 quotes the first max code units of s as strconv.Quote would,
// writing lone surrogates as \uXXXX escapes rather than as U+FFFD.
func quoteUTF16(s goja.String, max int) string {
	n := s.Length()
	more := n > max
	if more {
		n = max
	}
	var b strings.Builder
	b.WriteByte('"')
	var run []uint16
	flush := func() {
		q := strconv.Quote(string(utf16.Decode(run)))
		b.WriteString(q[1 : len(q)-1])
		run = run[:0]
	}
	for i := 0; i < n; i++ {
		u := s.CharAt(i)
		if !utf16.IsSurrogate(rune(u)) {
			run = append(run, u)
			continue
		}
		if u < 0xDC00 && i+1 < n {
			if next := s.CharAt(i + 1); utf16.IsSurrogate(rune(next)) && next >= 0xDC00 {
				run = append(run, u, next)
				i++
				continue
			}
		}
		flush()
		fmt.Fprintf(&b, "\\u%04X", u)
	}
	flush()
	if more {
		b.WriteString("...")
	}
	b.WriteByte('"')
	return b.String()
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

var intRange = map[kind][2]float64{
	kInt2: {math.MinInt16, math.MaxInt16},
	kInt4: {math.MinInt32, math.MaxInt32},
	kOID:  {0, math.MaxUint32},
}

func (c *conv) encodeInt(v goja.Value, t *pgType) ([]byte, error) {
	want := "an integer number"
	if t.kind == kInt8 {
		want = "an integer number, a BigInt or a decimal string"
	}
	var n int64
	switch p := prim(v).(type) {
	case int64:
		n = p
	case float64:
		if math.IsNaN(p) || math.IsInf(p, 0) || p != math.Trunc(p) {
			return nil, fmt.Errorf("got %s, want an integer", describe(v))
		}
		if p < -(1<<63) || p >= 1<<63 {
			return nil, fmt.Errorf("%s is out of range", describe(v))
		}
		n = int64(p)
	case *big.Int:
		if t.kind != kInt8 {
			return nil, wrongType(v, want)
		}
		if !p.IsInt64() {
			return nil, fmt.Errorf("%s is out of range", describe(v))
		}
		n = p.Int64()
	case string:
		if t.kind != kInt8 {
			return nil, wrongType(v, want)
		}
		var err error
		if n, err = strconv.ParseInt(p, 10, 64); err != nil {
			return nil, fmt.Errorf("%s is not an integer in range", describe(v))
		}
	default:
		return nil, wrongType(v, want)
	}
	if r, ok := intRange[t.kind]; ok && (float64(n) < r[0] || float64(n) > r[1]) {
		return nil, fmt.Errorf("%s is out of range", describe(v))
	}
	return strconv.AppendInt(nil, n, 10), nil
}

// appendPGFloat formats f as PostgreSQL prints a float8 (bits 64) or float4
// (bits 32): the shortest digits that read back exactly, in fixed notation
// for decimal exponents from -4 up to 14 (float8) or 5 (float4), otherwise
// in exponent notation with at least two exponent digits.
func appendPGFloat(buf []byte, f float64, bits int) ([]byte, error) {
	switch {
	case math.IsNaN(f):
		return append(buf, "NaN"...), nil
	case math.IsInf(f, 1):
		return append(buf, "Infinity"...), nil
	case math.IsInf(f, -1):
		return append(buf, "-Infinity"...), nil
	}
	limit := 15
	if bits == 32 {
		limit = 6
		// Round from the shortest decimal of the double, as PostgreSQL
		// would from its text. A double read from a float4's text thus
		// always returns to that float4; rounding the double directly
		// would not (7.038531e-26 is one that differs).
		f32, err := strconv.ParseFloat(strconv.FormatFloat(f, 'g', -1, 64), 32)
		if err != nil || (f32 == 0 && f != 0) {
			return nil, fmt.Errorf("%s is out of range for real", strconv.FormatFloat(f, 'g', -1, 64))
		}
		f = f32
	}
	start := len(buf)
	buf = strconv.AppendFloat(buf, f, 'e', -1, bits)
	e := bytes.IndexByte(buf[start:], 'e')
	exp, _ := strconv.Atoi(string(buf[start+e+1:]))
	if exp < -4 || exp >= limit {
		return buf, nil
	}
	return strconv.AppendFloat(buf[:start], f, 'f', -1, bits), nil
}

// validNumeric accepts what numeric_in accepts: NaN, [+-]Infinity, [+-]inf
// and decimal numbers with an optional exponent, with surrounding spaces.
func validNumeric(s string) bool {
	s = strings.TrimSpace(s)
	switch strings.ToLower(strings.TrimLeft(s, "+-")) {
	case "nan":
		return s == strings.TrimLeft(s, "+-")
	case "infinity", "inf":
		return len(s)-len(strings.TrimLeft(s, "+-")) <= 1
	}
	i := 0
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		i++
	}
	digits := 0
	for ; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
		digits++
	}
	if i < len(s) && s[i] == '.' {
		i++
		for ; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
			digits++
		}
	}
	if digits == 0 {
		return false
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		exp := 0
		for ; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
			exp++
		}
		if exp == 0 {
			return false
		}
	}
	return i == len(s)
}

// dateText formats a JavaScript Date for a date/time column: UTC, with
// milliseconds, ISO 8601, and " BC" for years before 1.
func dateText(t time.Time, k kind) string {
	t = t.UTC()
	y, bc := t.Year(), ""
	if y <= 0 {
		y, bc = 1-y, " BC"
	}
	date := fmt.Sprintf("%04d-%02d-%02d", y, int(t.Month()), t.Day())
	clock := fmt.Sprintf("%02d:%02d:%02d.%03d", t.Hour(), t.Minute(), t.Second(), t.Nanosecond()/1e6)
	switch k {
	case kDate:
		return date + bc
	case kTime:
		return clock
	case kTimeTZ:
		return clock + "+00"
	case kTimestamp:
		return date + "T" + clock + bc
	}
	return date + "T" + clock + "Z" + bc
}

// encodeArray writes a JavaScript array (nested for more dimensions) as a
// PostgreSQL array literal. hint, the array the script was given in the same
// column, supplies original element bytes and lower bounds when the shape
// is unchanged.
func (c *conv) encodeArray(v goja.Value, t *pgType, hint *pgtype.Array[*string]) ([]byte, error) {
	o, ok := v.(*goja.Object)
	if !ok || o.ClassName() != "Array" {
		return nil, wrongType(v, "an array")
	}
	// A JSON element may itself be an array: the dimensions are then those
	// of the given array, or one.
	maxDims := 6
	if t.elem.isJSON() {
		maxDims = 1
		if hint != nil && len(hint.Dims) > 0 {
			maxDims = len(hint.Dims)
		}
	}
	var dims []pgtype.ArrayDimension
	for cur := o; cur != nil && len(dims) < maxDims; {
		n := arrayLen(cur)
		dims = append(dims, pgtype.ArrayDimension{Length: int32(n), LowerBound: 1})
		if n == 0 {
			break
		}
		next, ok := cur.Get("0").(*goja.Object)
		if !ok || next.ClassName() != "Array" {
			break
		}
		cur = next
	}
	count := 1
	for _, d := range dims {
		count *= int(d.Length)
	}
	arr := pgtype.Array[*string]{Dims: []pgtype.ArrayDimension{}, Valid: true}
	if count == 0 {
		return c.pg.Encode(c.arrayOID(t.delim), pgtype.TextFormatCode, arr, nil)
	}
	sameShape := hint != nil && len(hint.Dims) == len(dims)
	for i := range dims {
		sameShape = sameShape && hint.Dims[i].Length == dims[i].Length
	}
	if sameShape {
		arr.Dims = hint.Dims
	} else {
		arr.Dims = dims
	}
	arr.Elements = make([]*string, 0, count)
	var walk func(o *goja.Object, dim int, path string) error
	walk = func(o *goja.Object, dim int, path string) error {
		if n := arrayLen(o); n != int(dims[dim].Length) {
			return fmt.Errorf("array%s has %d elements where its siblings have %d: arrays must be rectangular", path, n, dims[dim].Length)
		}
		for i := 0; i < int(dims[dim].Length); i++ {
			e := o.Get(strconv.Itoa(i))
			p := path + "[" + strconv.Itoa(i) + "]"
			if dim < len(dims)-1 {
				sub, ok := e.(*goja.Object)
				if !ok || sub.ClassName() != "Array" {
					return fmt.Errorf("array%s is %s where its siblings are arrays: arrays must be rectangular", p, describe(e))
				}
				if err := walk(sub, dim+1, p); err != nil {
					return err
				}
				continue
			}
			if goja.IsUndefined(e) {
				return fmt.Errorf("array%s is undefined (use null for a NULL element)", p)
			}
			var g *given
			if sameShape {
				g = &given{typ: t.elem, val: change.Value{Kind: change.Null}}
				if h := hint.Elements[len(arr.Elements)]; h != nil {
					g.val = change.Value{Kind: change.Text, Data: []byte(*h)}
				}
			}
			ev, err := c.encode(e, t.elem, g)
			if err != nil {
				return fmt.Errorf("array%s: %w", p, err)
			}
			if ev.Kind == change.Null {
				arr.Elements = append(arr.Elements, nil)
				continue
			}
			s := string(ev.Data)
			arr.Elements = append(arr.Elements, &s)
		}
		return nil
	}
	if err := walk(o, 0, ""); err != nil {
		return nil, err
	}
	return c.pg.Encode(c.arrayOID(t.delim), pgtype.TextFormatCode, arr, nil)
}

// prim returns the Go value of a primitive (int64, float64, string, bool,
// *big.Int) and nil for objects, null and undefined.
func prim(v goja.Value) any {
	if v == nil {
		return nil
	}
	switch v.(type) {
	case *goja.Object, *goja.Symbol:
		return nil
	}
	return v.Export()
}

func number(v goja.Value) (float64, bool) {
	switch p := prim(v).(type) {
	case int64:
		return float64(p), true
	case float64:
		return p, true
	}
	return 0, false
}

func bytesOf(v goja.Value) ([]byte, bool) {
	o, ok := v.(*goja.Object)
	if !ok {
		return nil, false
	}
	switch o.ExportType() {
	case typeBytes:
		b, ok := o.Export().([]byte)
		return b, ok
	case typeArrayBuffer:
		ab, ok := o.Export().(goja.ArrayBuffer)
		return ab.Bytes(), ok
	}
	return nil, false
}

func arrayLen(o *goja.Object) int {
	return int(o.Get("length").ToInteger())
}

// jsType names the JavaScript type of v, as typeof would but telling arrays,
// dates and binary data apart.
func jsType(v goja.Value) string {
	switch {
	case v == nil || goja.IsUndefined(v):
		return "undefined"
	case goja.IsNull(v):
		return "null"
	}
	if _, ok := v.(*goja.Symbol); ok {
		return "symbol"
	}
	if o, ok := v.(*goja.Object); ok {
		if _, ok := goja.AssertFunction(o); ok {
			return "function"
		}
		switch o.ClassName() {
		case "Array":
			return "array"
		case "Date":
			return "Date"
		}
		if _, ok := bytesOf(o); ok {
			return "binary data"
		}
		return "object"
	}
	switch prim(v).(type) {
	case int64, float64:
		return "number"
	case string:
		return "string"
	case bool:
		return "boolean"
	case *big.Int:
		return "bigint"
	}
	return "value"
}

// describe is jsType with the value for primitives: `string "abc"`.
func describe(v goja.Value) string {
	t := jsType(v)
	switch p := prim(v).(type) {
	case string:
		if len(p) > 40 {
			p = p[:37] + "..."
		}
		return t + " " + strconv.Quote(p)
	case int64, float64, bool:
		return t + " " + v.String()
	case *big.Int:
		return t + " " + p.String() + "n"
	}
	return t
}

func wrongType(v goja.Value, want string) error {
	return fmt.Errorf("got %s, want %s", describe(v), want)
}
