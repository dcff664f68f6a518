package transform

import (
	"github.com/dop251/goja"
	"github.com/jackc/pgx/v5/pgtype"
)

// boolCodec maps bool to a JavaScript boolean and back.
type boolCodec struct{}

func (boolCodec) toJS(c *conv, _ *pgType, data []byte, _ *given) (goja.Value, error) {
	var b bool
	if err := c.pg.Scan(pgtype.BoolOID, pgtype.TextFormatCode, data, &b); err != nil {
		return nil, err
	}
	return c.vm.ToValue(b), nil
}

func (boolCodec) same(_ *conv, v goja.Value, _ *pgType, data []byte, _ *given) bool {
	b, ok := prim(v).(bool)
	return ok && b == (string(data) == "t")
}

func (boolCodec) encode(_ *conv, v goja.Value, _ *pgType, _ *given) ([]byte, error) {
	if b, ok := prim(v).(bool); ok {
		if b {
			return []byte("t"), nil
		}
		return []byte("f"), nil
	}
	return nil, wrongType(v, "a boolean")
}
