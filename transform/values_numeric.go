package transform

import (
	"bytes"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"

	"github.com/dop251/goja"
	"github.com/jackc/pgx/v5/pgtype"
)

// The number codecs: integers, numeric and floats.

const maxSafeInt = 1<<53 - 1

// intCodec maps int2, int4 and oid to a JavaScript number and back, from an
// integer number in [lo, hi].
type intCodec struct {
	lo, hi float64
}

var (
	int2Codec = intCodec{lo: math.MinInt16, hi: math.MaxInt16}
	int4Codec = intCodec{lo: math.MinInt32, hi: math.MaxInt32}
	oidCodec  = intCodec{lo: 0, hi: math.MaxUint32}
)

func (intCodec) toJS(c *conv, _ *pgType, data []byte, _ *given) (goja.Value, error) {
	return intToJS(c, data)
}

func (intCodec) same(_ *conv, v goja.Value, _ *pgType, data []byte, _ *given) bool {
	f, ok := number(v)
	n, err := strconv.ParseInt(string(data), 10, 64)
	return ok && err == nil && f == float64(n)
}

func (ic intCodec) encode(_ *conv, v goja.Value, _ *pgType, _ *given) ([]byte, error) {
	n, err := jsInt(v, false, "an integer number")
	if err != nil {
		return nil, err
	}
	if float64(n) < ic.lo || float64(n) > ic.hi {
		return nil, fmt.Errorf("%s is out of range", describe(v))
	}
	return strconv.AppendInt(nil, n, 10), nil
}

// int8Codec maps int8 to a JavaScript number, or a BigInt beyond
// ±(2^53-1), and back from an integer number, a BigInt or a decimal string.
type int8Codec struct{}

func (int8Codec) toJS(c *conv, _ *pgType, data []byte, _ *given) (goja.Value, error) {
	return intToJS(c, data)
}

func (int8Codec) same(_ *conv, v goja.Value, _ *pgType, data []byte, _ *given) bool {
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
}

func (int8Codec) encode(_ *conv, v goja.Value, _ *pgType, _ *given) ([]byte, error) {
	n, err := jsInt(v, true, "an integer number, a BigInt or a decimal string")
	if err != nil {
		return nil, err
	}
	return strconv.AppendInt(nil, n, 10), nil
}

// intToJS reads the text of an integer: a number, or a BigInt beyond what a
// number holds exactly.
func intToJS(c *conv, data []byte) (goja.Value, error) {
	var n int64
	if err := c.pg.Scan(pgtype.Int8OID, pgtype.TextFormatCode, data, &n); err != nil {
		return nil, err
	}
	if n > maxSafeInt || n < -maxSafeInt {
		return c.vm.ToValue(big.NewInt(n)), nil
	}
	return c.vm.ToValue(n), nil
}

// jsInt returns the int64 that v, an integer number, stands for; wide (int8)
// also takes a BigInt or a decimal string. want names what is accepted.
func jsInt(v goja.Value, wide bool, want string) (int64, error) {
	var n int64
	switch p := prim(v).(type) {
	case int64:
		n = p
	case float64:
		if math.IsNaN(p) || math.IsInf(p, 0) || p != math.Trunc(p) {
			return 0, fmt.Errorf("got %s, want an integer", describe(v))
		}
		if p < -(1<<63) || p >= 1<<63 {
			return 0, fmt.Errorf("%s is out of range", describe(v))
		}
		n = int64(p)
	case *big.Int:
		if !wide {
			return 0, wrongType(v, want)
		}
		if !p.IsInt64() {
			return 0, fmt.Errorf("%s is out of range", describe(v))
		}
		n = p.Int64()
	case string:
		if !wide {
			return 0, wrongType(v, want)
		}
		var err error
		if n, err = strconv.ParseInt(p, 10, 64); err != nil {
			return 0, fmt.Errorf("%s is not an integer in range", describe(v))
		}
	default:
		return 0, wrongType(v, want)
	}
	return n, nil
}

// numericCodec hands numeric to JavaScript as the string PostgreSQL printed,
// which keeps every digit and the scale, and takes back a string, a number
// or a BigInt.
type numericCodec struct{}

func (numericCodec) toJS(c *conv, _ *pgType, data []byte, _ *given) (goja.Value, error) {
	return c.vm.ToValue(string(data)), nil
}

func (numericCodec) same(_ *conv, v goja.Value, _ *pgType, data []byte, _ *given) bool {
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
}

func (numericCodec) encode(_ *conv, v goja.Value, _ *pgType, _ *given) ([]byte, error) {
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

// floatCodec maps float4 (bits 32) and float8 (bits 64) to a JavaScript
// number and back, keeping NaN, ±Infinity and -0.
type floatCodec struct {
	bits int
}

func (floatCodec) toJS(c *conv, _ *pgType, data []byte, _ *given) (goja.Value, error) {
	// float4 too is read as float64: 0.1 stays 0.1 rather than
	// 0.10000000149011612, and writing it back to float4 rounds to the
	// same float4 (see appendPGFloat).
	var f float64
	if err := c.pg.Scan(pgtype.Float8OID, pgtype.TextFormatCode, data, &f); err != nil {
		return nil, err
	}
	return c.vm.ToValue(f), nil
}

func (floatCodec) same(_ *conv, v goja.Value, _ *pgType, data []byte, _ *given) bool {
	f, ok := number(v)
	x, err := strconv.ParseFloat(string(data), 64)
	return ok && err == nil && (math.Float64bits(f) == math.Float64bits(x) || math.IsNaN(f) && math.IsNaN(x))
}

func (fc floatCodec) encode(_ *conv, v goja.Value, _ *pgType, _ *given) ([]byte, error) {
	f, ok := number(v)
	if !ok {
		return nil, wrongType(v, "a number")
	}
	return appendPGFloat(nil, f, fc.bits)
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

func number(v goja.Value) (float64, bool) {
	switch p := prim(v).(type) {
	case int64:
		return float64(p), true
	case float64:
		return p, true
	}
	return 0, false
}
