package transform

import (
	"bytes"
	"errors"
	"reflect"
	"strconv"

	"github.com/dop251/goja"
	"github.com/jackc/pgx/v5/pgtype"
)

// byteaCodec maps bytea to a Uint8Array, and writes back a Uint8Array or an
// ArrayBuffer.
type byteaCodec struct{}

func (byteaCodec) toJS(c *conv, _ *pgType, data []byte, _ *given) (goja.Value, error) {
	b, err := c.bytea(data)
	if err != nil {
		return nil, err
	}
	return c.vm.New(c.uint8Array, c.vm.ToValue(c.vm.NewArrayBuffer(b)))
}

func (byteaCodec) same(c *conv, v goja.Value, _ *pgType, data []byte, _ *given) bool {
	b, ok := bytesOf(v)
	if !ok {
		return false
	}
	orig, err := c.bytea(data)
	return err == nil && bytes.Equal(b, orig)
}

func (byteaCodec) encode(c *conv, v goja.Value, _ *pgType, _ *given) ([]byte, error) {
	b, ok := bytesOf(v)
	if !ok {
		return nil, wrongType(v, "a Uint8Array or an ArrayBuffer")
	}
	return c.pg.Encode(pgtype.ByteaOID, pgtype.TextFormatCode, b, nil)
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

var (
	typeBytes       = reflect.TypeOf([]byte(nil))
	typeArrayBuffer = reflect.TypeOf(goja.ArrayBuffer{})
)

// bytesOf returns the bytes of a Uint8Array or an ArrayBuffer.
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
