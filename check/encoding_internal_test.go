package check

import (
	"strings"
	"testing"
)

// The judgement of encodings beyond the pairs TestCheckEncodings sets up:
// each case names the database and client encodings of the side read and
// the side written.
func TestEncodingFinding(t *testing.T) {
	for _, c := range []struct {
		name         string
		r, rc, w, wc string
		ok, warn     bool
		says         string
	}{
		{"UTF8 into SQL_ASCII", "UTF8", "UTF8", "SQL_ASCII", "SQL_ASCII", true, false, "the target stores text as SQL_ASCII, unchecked: it receives the source's text as UTF8 bytes"},
		{"LATIN1 into SQL_ASCII, as UTF8", "LATIN1", "UTF8", "SQL_ASCII", "UTF8", true, true, "as UTF8 bytes, not as the LATIN1 bytes the source holds"},
		{"SQL_ASCII into LATIN1", "SQL_ASCII", "SQL_ASCII", "LATIN1", "LATIN1", true, false, "the target (LATIN1) takes its bytes unchanged as LATIN1 characters"},
		{"SQL_ASCII into LATIN1, as UTF8", "SQL_ASCII", "UTF8", "LATIN1", "UTF8", true, true,
			"they are taken as UTF8: the first value whose bytes are not valid UTF8 or a value with characters that LATIN1 cannot represent stops the daemon"},
		{"SQL_ASCII on both, as UTF8", "SQL_ASCII", "UTF8", "SQL_ASCII", "UTF8", true, true, "the first value whose bytes are not valid UTF8 stops the daemon"},
		{"LATIN1 on both, as UTF8", "LATIN1", "UTF8", "LATIN1", "UTF8", true, false, "both store text as LATIN1: values pass unchanged"},
		{"LATIN1 into WIN1252, as UTF8", "LATIN1", "UTF8", "WIN1252", "UTF8", true, true, "characters that WIN1252 cannot represent"},
		{"EUC_JP into UTF8", "EUC_JP", "EUC_JP", "UTF8", "UTF8", false, false, "either rejected, which stops the daemon, or stored as other characters"},
	} {
		f := encodingFinding("source", "target", c.r, c.rc, c.w, c.wc)
		if f.OK != c.ok || f.Warn != c.warn || !strings.Contains(f.Message, c.says) {
			t.Errorf("%s: got OK=%v Warn=%v %q; want OK=%v Warn=%v and %q", c.name, f.OK, f.Warn, f.Message, c.ok, c.warn, c.says)
		}
	}
}
