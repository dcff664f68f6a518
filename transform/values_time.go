package transform

import (
	"errors"
	"fmt"
	"time"

	"github.com/dop251/goja"
)

// timeCodec hands date, time, timetz, timestamp and timestamptz to
// JavaScript as the string PostgreSQL printed, and writes back a string or
// a Date. Only encode differs from textCodec.
type timeCodec struct {
	textCodec
	kind kind // which of the five: how a Date is written
}

func (tc timeCodec) encode(_ *conv, v goja.Value, _ *pgType, _ *given) ([]byte, error) {
	if s, ok := prim(v).(string); ok {
		return textBytes(v, s)
	}
	if o, ok := v.(*goja.Object); ok && o.ClassName() == "Date" {
		tm, ok := o.Export().(time.Time)
		if !ok {
			return nil, errors.New("got an invalid Date")
		}
		return []byte(dateText(tm, tc.kind)), nil
	}
	return nil, wrongType(v, "a string or a Date")
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
