package transform

import (
	"fmt"
	"strconv"

	"github.com/dop251/goja"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/cdcbridge/cdcbridge/change"
)

// arrayCodec maps an array to a JavaScript array, nested for more
// dimensions, whose elements go through the codec of the element type
// (t.elem), and back. The parsed elements are kept in the given value, so
// that an array returned with the same shape keeps the original bytes of
// its unchanged elements and its lower bounds.
type arrayCodec struct{}

func (arrayCodec) toJS(c *conv, t *pgType, data []byte, g *given) (goja.Value, error) {
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

func (arrayCodec) same(c *conv, v goja.Value, t *pgType, data []byte, g *given) bool {
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

func (arrayCodec) encode(c *conv, v goja.Value, t *pgType, g *given) ([]byte, error) {
	var hint *pgtype.Array[*string]
	if g != nil && g.val.Kind == change.Text && sameKind(g.typ, t) {
		hint = g.arr
		if hint == nil {
			hint, _ = c.parseArray(g.typ, g.val.Data)
		}
	}
	return c.encodeArray(v, t, hint)
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
