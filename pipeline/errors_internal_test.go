package pipeline

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/cdcbridge/cdcbridge/transform"
)

// TestRetryable: faults of the connection or the server are retried; errors
// about the data or the configuration are not.
func TestRetryable(t *testing.T) {
	opErr := func(e syscall.Errno) error {
		return &net.OpError{Op: "write", Net: "tcp", Err: os.NewSyscallError("write", e)}
	}
	for _, c := range []struct {
		name string
		err  error
		want bool
	}{
		{"a closed connection", fmt.Errorf("writing the checkpoint: %w", pgconn.ErrConnClosed), true},
		{"a broken pipe", fmt.Errorf("sending: %w", opErr(syscall.EPIPE)), true},
		{"a reset connection", fmt.Errorf("receiving: %w", opErr(syscall.ECONNRESET)), true},
		{"an unexpected EOF", fmt.Errorf("receive message failed: %w", io.ErrUnexpectedEOF), true},
		{"an administrator's shutdown", &pgconn.PgError{Code: "57P01"}, true},
		{"a server starting up", &pgconn.PgError{Code: "57P03"}, true},
		{"a deadlock", &pgconn.PgError{Code: "40P01"}, true},
		{"too many connections", &pgconn.PgError{Code: "53300"}, true},
		{"a slot in use", &pgconn.PgError{Code: "55006"}, true},
		{"a unique violation", &pgconn.PgError{Code: "23505"}, false},
		{"a missing table", &pgconn.PgError{Code: "42P01"}, false},
		{"a transform error", &transform.Error{Err: errors.New("threw")}, false},
		{"a plain error", errors.New("something else"), false},
	} {
		if got := Retryable(c.err); got != c.want {
			t.Errorf("%s: Retryable = %v, want %v", c.name, got, c.want)
		}
	}
}
