package transform

import (
	"fmt"
	"math/big"
	"strconv"
	"strings"

	"github.com/dop251/goja"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/cdcbridge/cdcbridge/change"
)

// conv maps column values between PostgreSQL's text form and JavaScript in
// one runtime. Each kind of type has a codec (see codecs) that does the
// work; conv holds what they share in the runtime. Parsing and formatting go
// through pgtype where it has the type; floats are formatted here because
// pgtype writes "+Inf" and long fixed forms that PostgreSQL does not print,
// and json is parsed here because only a parser that keeps number literals
// makes exact round trips possible.
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

// codec maps the values of one kind of PostgreSQL type between the text
// PostgreSQL prints and JavaScript, as a pgtype codec does between text and
// Go. Codecs hold no state of their own: what a runtime needs is in the conv
// passed in, and t is the column's type (arrays find their element there).
type codec interface {
	// toJS returns the JavaScript value of data, the text of a non-NULL
	// value. g, when not nil, is the given value data is the text of: a
	// codec that parses the text keeps the parse there for same and encode.
	toJS(c *conv, t *pgType, data []byte, g *given) (goja.Value, error)
	// same reports whether v, neither null nor undefined, is the value whose
	// text is data: whether writing data back is writing v. g as for toJS.
	same(c *conv, v goja.Value, t *pgType, data []byte, g *given) bool
	// encode returns the text to write for v, neither null nor undefined,
	// in a column of type t. g is the value the script was given under the
	// same column name, if any, of whatever type: a codec may take
	// original bytes from it.
	encode(c *conv, v goja.Value, t *pgType, g *given) ([]byte, error)
}

// codecs is the codec of each kind.
var codecs = [...]codec{
	kString:      textCodec{},
	kBool:        boolCodec{},
	kInt2:        int2Codec,
	kInt4:        int4Codec,
	kOID:         oidCodec,
	kInt8:        int8Codec{},
	kNumeric:     numericCodec{},
	kFloat4:      floatCodec{bits: 32},
	kFloat8:      floatCodec{bits: 64},
	kJSON:        jsonCodec{},
	kJSONB:       jsonCodec{},
	kBytea:       byteaCodec{},
	kDate:        timeCodec{kind: kDate},
	kTime:        timeCodec{kind: kTime},
	kTimeTZ:      timeCodec{kind: kTimeTZ},
	kTimestamp:   timeCodec{kind: kTimestamp},
	kTimestampTZ: timeCodec{kind: kTimestampTZ},
	kInterval:    textCodec{}, // a string both ways; a Date is no interval
	kArray:       arrayCodec{},
}

// toJS returns the JavaScript value for g.
func (c *conv) toJS(g *given) (goja.Value, error) {
	if g.val.Kind == change.Null {
		return goja.Null(), nil
	}
	return c.textToJS(g.typ, g.val.Data, g)
}

func (c *conv) textToJS(t *pgType, data []byte, g *given) (goja.Value, error) {
	return codecs[t.kind].toJS(c, t, data, g)
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
	return codecs[t.kind].same(c, v, t, data, g)
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
	return codecs[t.kind].encode(c, v, t, g)
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
