package transform

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/dop251/goja"
)

// textCodec hands a value to JavaScript as the string PostgreSQL printed and
// writes back a string: text, uuid, inet, enums, ranges, composites,
// intervals and every type without a codec of its own.
type textCodec struct{}

func (textCodec) toJS(c *conv, _ *pgType, data []byte, _ *given) (goja.Value, error) {
	return c.vm.ToValue(string(data)), nil
}

func (textCodec) same(_ *conv, v goja.Value, _ *pgType, data []byte, _ *given) bool {
	s, ok := prim(v).(string)
	return ok && s == string(data) && loneSurrogate(v, s) < 0
}

func (textCodec) encode(_ *conv, v goja.Value, _ *pgType, _ *given) ([]byte, error) {
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
