package check

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/cdcbridge/cdcbridge/config"
	"github.com/cdcbridge/cdcbridge/finding"
)

// sqlASCII is the encoding of a database that stores any bytes unchecked.
const sqlASCII = "SQL_ASCII"

// encodingFindings says what becomes of text on its way from the side read
// to the side written, from the encodings of both databases and of the
// bridge's connections to them (UTF8 unless a DSN sets client_encoding; see
// replication.SetClientEncoding).
func encodingFindings(ctx context.Context, v config.View, s *databases) []finding.Finding {
	readSide, writeSide := v.ReadName, v.WriteName
	var enc [2][2]string
	for i, c := range []*pgx.Conn{s.read, s.write} {
		if err := c.QueryRow(ctx, `SELECT current_setting('server_encoding'), current_setting('client_encoding')`).Scan(&enc[i][0], &enc[i][1]); err != nil {
			return []finding.Finding{{Where: []string{readSide, writeSide}[i], Message: "reading the server and client encodings: " + err.Error()}}
		}
	}
	return []finding.Finding{encodingFinding(readSide, writeSide, enc[0][0], enc[0][1], enc[1][0], enc[1][1])}
}

// encodingFinding judges the way of text from the side read (its database
// encoding r, its connections' client_encoding rc) to the side written (w,
// wc). The bridge passes values on as the bytes it receives: the side read
// sends them converted to rc, and the side written takes them as wc, checks
// them and converts them to w. So text is converted only when rc and wc are
// the same encoding; when they differ, it is misread. A SQL_ASCII database
// holds bytes that it neither checks nor converts; when the client's
// encoding is another, the server checks the bytes as that encoding, both
// ways.
func encodingFinding(rs, ws, r, rc, w, wc string) finding.Finding {
	// check is the encoding the side written checks what it receives as,
	// "" when it takes any bytes.
	check := wc
	if wc == sqlASCII {
		check = w
	}
	if check == sqlASCII {
		check = ""
	}
	// sent is the encoding of what the side read sends. The bytes of a
	// SQL_ASCII database are first taken as an encoding (and checked) by
	// its connection when the client_encoding is another, or else by the
	// side written: ascii names that encoding.
	sent, ascii := rc, ""
	switch {
	case r == sqlASCII && rc != sqlASCII:
		ascii = rc
	case r == sqlASCII:
		sent, ascii = "", check
	case rc == sqlASCII:
		sent = r
	}
	// from is the encoding whose characters the text holds.
	from := r
	if r == sqlASCII {
		from = ascii
	}
	// lossy names the encodings on the way that may lack some of them.
	var lossy []string
	if sent != "" && sent != from && sent != "UTF8" {
		lossy = append(lossy, sent)
	}
	if w != sqlASCII && w != from && w != "UTF8" && w != sent {
		lossy = append(lossy, w)
	}
	f := finding.Finding{Where: "encoding", OK: true}
	switch {
	case r == sqlASCII && w == sqlASCII && ascii == "":
		f.Message = fmt.Sprintf("the %s and the %s both store text as SQL_ASCII, unchecked: values pass unchanged", rs, ws)
	case sent != "" && check != "" && sent != check:
		f.OK = false
		f.Message = fmt.Sprintf("the %s (%s) sends text as %s and the %s (%s) takes what the bridge writes as %s (the client_encoding set in the DSNs), and the bridge does not convert between them: ",
			rs, r, sent, ws, w, check)
		if singleByte(check) {
			f.Message += "a value with characters outside ASCII is stored as other characters, without an error"
		} else {
			f.Message += "a value with characters outside ASCII is either rejected, which stops the daemon, or stored as other characters without an error"
		}
		f.Fix = "set one client_encoding in both DSNs, or none (the bridge then uses UTF8): each server then converts its text to and from it"
		if w != sqlASCII && w != from && w != "UTF8" {
			f.Fix += fmt.Sprintf("; characters of %s that %s cannot represent will still stop the daemon at their change", from, w)
		}
	case r == sqlASCII && (!singleByte(ascii) || len(lossy) > 0):
		f.Warn = true
		f.Message = fmt.Sprintf("the %s stores text as SQL_ASCII, which takes any bytes unchecked, but on the bridge's way to the %s (%s) they are taken as %s", rs, ws, w, ascii)
		var stops []string
		if !singleByte(ascii) {
			stops = append(stops, fmt.Sprintf("the first value whose bytes are not valid %s", ascii))
		}
		if len(lossy) > 0 {
			stops = append(stops, fmt.Sprintf("a value with characters that %s cannot represent", strings.Join(lossy, " or ")))
		}
		f.Message += ": " + strings.Join(stops, " or ") + " stops the daemon at that change, the initial copy included"
		f.Fix = fmt.Sprintf("correct those values on the %s, or let the %s store bytes unchecked too: a database created with ENCODING 'SQL_ASCII' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0, and client_encoding=SQL_ASCII in both DSNs", rs, ws)
	case r == sqlASCII:
		f.Message = fmt.Sprintf("the %s stores text as SQL_ASCII, unchecked, and the %s (%s) takes its bytes unchanged as %s characters", rs, ws, w, ascii)
	case len(lossy) > 0:
		f.Warn = true
		f.Message = fmt.Sprintf("text is converted from %s (the %s) to %s (the %s): a value with characters that %s cannot represent is rejected and stops the daemon at that change, the initial copy included",
			r, rs, w, ws, strings.Join(lossy, " or "))
		enc := "'UTF8'"
		if r != "UTF8" {
			enc += fmt.Sprintf(" (or '%s')", r)
		}
		f.Fix = fmt.Sprintf("keep such characters out of the mapped columns, or create the %s's database with ENCODING %s", ws, enc)
	case r == w:
		f.Message = fmt.Sprintf("the %s and the %s both store text as %s: values pass unchanged", rs, ws, r)
	case w == sqlASCII:
		f.Message = fmt.Sprintf("the %s stores text as SQL_ASCII, unchecked: it receives the %s's text as %s bytes", ws, rs, sent)
		if sent != r {
			f.Warn = true
			f.Message += fmt.Sprintf(", not as the %s bytes the %s holds", r, rs)
		}
	default:
		f.Message = fmt.Sprintf("text is converted from %s (the %s) to %s (the %s), which can represent all of it", r, rs, w, ws)
	}
	return f
}

// singleByte reports whether a server encoding has one byte per character:
// it takes every byte but zero as a character.
func singleByte(enc string) bool {
	for _, p := range []string{"LATIN", "ISO_8859_", "WIN", "KOI8"} {
		if strings.HasPrefix(enc, p) {
			return true
		}
	}
	return false
}
