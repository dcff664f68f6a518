package config

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
)

// mask replaces every secret in messages.
const mask = "xxxxx"

// unparseable is what a DSN that pgconn cannot parse shows instead of itself.
const unparseable = "<unparseable dsn>"

// DSN is a PostgreSQL connection string: a libpq URL or keyword/value
// string. It is the only holder of the password. String, every fmt verb,
// slog and JSON show the redacted form user@host:port/dbname; only
// ConnString returns the raw string, for connecting.
//
// DSN values are comparable; the zero value is an empty DSN.
type DSN struct {
	raw         string
	redacted    string
	password    string
	sslPassword string
}

// ParseDSN parses raw with pgconn.ParseConfig, as a connection would. On
// error it still returns a DSN, which shows as "<unparseable dsn>", and an
// error that does not quote raw.
//
// Parsing reads what libpq would: PG* environment variables for defaults, and
// the password file when raw has no password.
func ParseDSN(raw string) (DSN, error) {
	d := DSN{raw: raw, redacted: unparseable, sslPassword: sslPassword(raw)}
	cfg, err := pgconn.ParseConfig(raw)
	if err != nil {
		return d, fmt.Errorf("not a valid connection string: %s", maskLoose(redact(parseErrorText(err), sortSecrets(d.passwordSecrets()))))
	}
	d.password = cfg.Password
	d.redacted = hostForm(cfg)
	return d, nil
}

// NewDSN is ParseDSN without the error, for callers that hold a connection
// string known to be good (tests, harnesses).
func NewDSN(raw string) DSN {
	d, _ := ParseDSN(raw)
	return d
}

// ConnString returns the raw connection string, password included. Pass it
// to pgx or pgconn; never log it.
func (d DSN) ConnString() string { return d.raw }

// Password returns the password that a connection would use: from the
// string itself, PGPASSWORD or the password file.
func (d DSN) Password() string { return d.password }

// String returns user@host:port/dbname (several hosts separated by commas),
// or "<unparseable dsn>".
func (d DSN) String() string {
	if d.redacted == "" {
		return "<empty dsn>"
	}
	return d.redacted
}

// GoString is used by %#v.
func (d DSN) GoString() string { return "config.DSN(" + strconv.Quote(d.String()) + ")" }

// Format prints the redacted form for every verb, so that %v, %+v, %#v, %s
// and %q of a DSN, or of any struct holding one, never show the password.
func (d DSN) Format(f fmt.State, verb rune) {
	switch {
	case verb == 'v' && f.Flag('#'):
		_, _ = io.WriteString(f, d.GoString())
	case verb == 'q':
		_, _ = io.WriteString(f, strconv.Quote(d.String()))
	default:
		_, _ = io.WriteString(f, d.String())
	}
}

// LogValue makes slog log the redacted form.
func (d DSN) LogValue() slog.Value { return slog.StringValue(d.String()) }

// MarshalJSON encodes the redacted form.
func (d DSN) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// Redact returns err with every occurrence of the password and of the raw
// connection string in its message replaced by xxxxx. The result unwraps to
// err, so errors.Is and errors.As (for *pgconn.PgError, say) still work; err
// itself is returned when there is nothing to replace, and nil for nil.
func (d DSN) Redact(err error) error { return redactErr(err, d.secrets()) }

// RedactString replaces every occurrence of the password and of the raw
// connection string in s by xxxxx.
func (d DSN) RedactString(s string) string { return redact(s, d.secrets()) }

// secrets lists the strings that must not appear in messages, longest first:
// the raw string, the passwords and the ways a URL may have escaped them.
func (d DSN) secrets() []string {
	return sortSecrets(append(d.passwordSecrets(), d.raw))
}

// passwordSecrets lists the passwords and the ways a URL may have escaped them.
func (d DSN) passwordSecrets() []string {
	var out []string
	for _, pw := range []string{d.password, d.sslPassword} {
		if pw == "" {
			continue
		}
		out = append(out, pw, url.QueryEscape(pw), url.PathEscape(pw),
			strings.TrimPrefix(url.UserPassword("u", pw).String(), "u:"))
	}
	return out
}

func sortSecrets(s []string) []string {
	s = slices.DeleteFunc(s, func(x string) bool { return x == "" })
	slices.SortFunc(s, func(a, b string) int { return cmp.Compare(len(b), len(a)) })
	return slices.Compact(s)
}

func redact(s string, secrets []string) string {
	for _, sec := range secrets {
		s = strings.ReplaceAll(s, sec, mask)
	}
	return s
}

func redactErr(err error, secrets []string) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	r := redact(msg, secrets)
	if r == msg {
		return err
	}
	return &redactedError{msg: r, err: err}
}

// redactedError shows a scrubbed message and unwraps to the original.
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

// hostForm builds user@host:port[,host:port]/dbname from a parsed config.
func hostForm(cfg *pgconn.Config) string {
	var hosts []string
	add := func(host string, port uint16) {
		hp := net.JoinHostPort(host, strconv.Itoa(int(port)))
		if !slices.Contains(hosts, hp) {
			hosts = append(hosts, hp)
		}
	}
	add(cfg.Host, cfg.Port)
	for _, fb := range cfg.Fallbacks {
		add(fb.Host, fb.Port)
	}
	s := strings.Join(hosts, ",") + "/" + cfg.Database
	if cfg.User != "" {
		s = cfg.User + "@" + s
	}
	return s
}

// parseErrorText returns what pgconn says is wrong with a connection string,
// without the (best-effort redacted) string itself.
func parseErrorText(err error) string {
	var pce *pgconn.ParseConfigError
	if errors.As(err, &pce) {
		c := *pce
		c.ConnString = ""
		return strings.TrimPrefix(c.Error(), "cannot parse ``: ")
	}
	return err.Error()
}

var kvSSLPassword = regexp.MustCompile(`(?:^|\s)sslpassword\s*=\s*(?:'((?:\\.|[^'\\])*)'|(\S+))`)

// sslPassword finds the client key passphrase in a connection string, which
// pgconn consumes without exposing it.
func sslPassword(raw string) string {
	if strings.HasPrefix(raw, "postgres://") || strings.HasPrefix(raw, "postgresql://") {
		if u, err := url.Parse(raw); err == nil {
			return u.Query().Get("sslpassword")
		}
		return ""
	}
	m := kvSSLPassword.FindStringSubmatch(raw)
	switch {
	case m == nil:
		return ""
	case m[2] != "":
		return m[2]
	}
	var b strings.Builder
	for i := 0; i < len(m[1]); i++ {
		if m[1][i] == '\\' && i+1 < len(m[1]) {
			i++
		}
		b.WriteByte(m[1][i])
	}
	return b.String()
}

// Loose patterns for passwords in text that was never parsed: the userinfo
// of a URL and password= pairs. Mapping file messages pass through them in
// case a connection string landed where it does not belong.
var (
	urlPassword = regexp.MustCompile(`(://[^:/@\s]*:)[^@\s]*@`)
	kvPassword  = regexp.MustCompile(`((?:ssl)?password\s*=\s*)(?:'(?:\\.|[^'\\])*'|\S+)`)
)

func maskLoose(s string) string {
	s = urlPassword.ReplaceAllString(s, "${1}"+mask+"@")
	return kvPassword.ReplaceAllString(s, "${1}"+mask)
}
