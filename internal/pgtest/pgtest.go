package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Canary is the superuser password of every test cluster.
const Canary = "Canary-pw-7f3a9c"

// BinDir is where the server binaries are looked for; PG_BIN overrides it.
func BinDir() string {
	if d := os.Getenv("PG_BIN"); d != "" {
		return d
	}
	return "/usr/lib/postgresql/15/bin"
}

// Cluster is one running PostgreSQL server.
type Cluster struct {
	Name   string
	Dir    string
	Port   int
	cmd    *exec.Cmd
	exited chan error
	cred   *syscall.Credential
	log    string
	mu     sync.Mutex
	dbs    int
}

var (
	mu       sync.Mutex
	clusters = map[string]*Cluster{}
	startErr = map[string]error{}
	root     string
)

// Main runs the package's tests and stops every cluster they started.
func Main(m *testing.M) {
	code := m.Run()
	StopAll()
	os.Exit(code)
}

// StopAll stops every cluster started by this process.
func StopAll() {
	mu.Lock()
	defer mu.Unlock()
	for name, c := range clusters {
		c.stop()
		delete(clusters, name)
	}
	if root != "" {
		os.RemoveAll(root)
		root = ""
	}
}

// Get returns the named cluster, starting it on first use.
func Get(tb testing.TB, name string) *Cluster {
	tb.Helper()
	mu.Lock()
	defer mu.Unlock()
	if c, ok := clusters[name]; ok {
		return c
	}
	if err, ok := startErr[name]; ok {
		unavailable(tb, err)
	}
	c, err := start(name)
	if err != nil {
		startErr[name] = err
		unavailable(tb, err)
	}
	clusters[name] = c
	return c
}

// Source and Target are the two clusters most tests use.
func Source(tb testing.TB) *Cluster { tb.Helper(); return Get(tb, "source") }
func Target(tb testing.TB) *Cluster { tb.Helper(); return Get(tb, "target") }

func unavailable(tb testing.TB, err error) {
	tb.Helper()
	if os.Getenv("CI") == "true" {
		tb.Fatalf("PostgreSQL test cluster: %v", err)
	}
	tb.Skipf("PostgreSQL test cluster unavailable (set PG_BIN to the PostgreSQL 15 bin directory): %v", err)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// credential returns the identity to run the server as: nobody when we are root.
func credential() (*syscall.Credential, int, int, error) {
	if os.Geteuid() != 0 {
		return nil, -1, -1, nil
	}
	u, err := user.Lookup("nobody")
	if err != nil {
		return nil, 0, 0, fmt.Errorf("running as root and no user nobody to run the server as: %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, uid, gid, nil
}

func start(name string) (*Cluster, error) {
	bin := BinDir()
	if _, err := os.Stat(filepath.Join(bin, "initdb")); err != nil {
		return nil, fmt.Errorf("no initdb in %s: %w", bin, err)
	}
	cred, uid, gid, err := credential()
	if err != nil {
		return nil, err
	}
	if root == "" {
		root, err = os.MkdirTemp("", "cdcbridge-pgtest-")
		if err != nil {
			return nil, err
		}
		os.Chmod(root, 0o755)
	}
	dir := filepath.Join(root, name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	pwfile := filepath.Join(root, name+".pw")
	if err := os.WriteFile(pwfile, []byte(Canary+"\n"), 0o600); err != nil {
		return nil, err
	}
	if cred != nil {
		for _, p := range []string{dir, pwfile} {
			if err := os.Chown(p, uid, gid); err != nil {
				return nil, err
			}
		}
	}
	run := func(args ...string) *exec.Cmd {
		cmd := exec.Command(args[0], args[1:]...)
		cmd.Env = append(os.Environ(), "LC_ALL=C")
		if cred != nil {
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		}
		return cmd
	}
	data := filepath.Join(dir, "data")
	if out, err := run(filepath.Join(bin, "initdb"), "-D", data, "-U", "postgres", "--pwfile", pwfile,
		"--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--no-locale", "--no-sync").CombinedOutput(); err != nil {
		return nil, fmt.Errorf("initdb: %v\n%s", err, out)
	}
	os.Remove(pwfile)
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	conf := fmt.Sprintf(`
listen_addresses = '127.0.0.1'
port = %d
unix_socket_directories = '%s'
wal_level = logical
max_replication_slots = 64
max_wal_senders = 64
max_connections = 200
fsync = off
full_page_writes = off
synchronous_commit = off
shared_buffers = 128MB
wal_sender_timeout = 60s
log_min_messages = warning
log_line_prefix = '%%m [%%p] '
`, port, dir)
	f, err := os.OpenFile(filepath.Join(data, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return nil, err
	}
	f.WriteString(conf)
	f.Close()
	logPath := filepath.Join(dir, "server.log")
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	logf.Close()
	if cred != nil {
		os.Chown(logPath, uid, gid)
	}
	c := &Cluster{Name: name, Dir: dir, Port: port, log: logPath, cred: cred}
	if err := c.launch(); err != nil {
		return nil, err
	}
	return c, nil
}

// launch starts the server on the cluster's data directory and waits until
// it accepts connections.
func (c *Cluster) launch() error {
	logf, err := os.OpenFile(c.log, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	cmd := exec.Command(filepath.Join(BinDir(), "postgres"), "-D", filepath.Join(c.Dir, "data"))
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred, Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("starting postgres: %w", err)
	}
	logf.Close()
	c.cmd = cmd
	exited := make(chan error, 1)
	c.exited = exited
	go func() { exited <- cmd.Wait() }()
	// Up once it accepts a connection; down for good if it exits first.
	var exitErr error
	up := Until(30*time.Second, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		var conn *pgx.Conn
		if conn, err = pgx.Connect(ctx, c.DSN("postgres")); err == nil {
			conn.Close(context.Background())
			return true
		}
		select {
		case exitErr = <-exited:
			return true
		default:
			return false
		}
	})
	switch {
	case exitErr != nil || (up && err != nil):
		return fmt.Errorf("postgres exited during start-up: %v\n%s", exitErr, c.LogTail(40))
	case !up:
		c.stop()
		return fmt.Errorf("postgres did not accept connections within 30s: %v\n%s", err, c.LogTail(40))
	}
	return nil
}

// stop shuts the server down fast (SIGINT), killing it after 5s, and
// returns how long the fast shutdown took and whether it had to be killed.
func (c *Cluster) stop() (took time.Duration, killed bool) {
	if c.cmd == nil || c.cmd.Process == nil {
		return 0, false
	}
	began := time.Now()
	c.cmd.Process.Signal(syscall.SIGINT) // fast shutdown
	select {
	case <-c.exited:
	case <-time.After(5 * time.Second):
		killed = true
		// The whole process group: a postmaster killed alone leaves its
		// backends holding the shared memory, and no new server starts.
		syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL)
		<-c.exited
	}
	c.cmd = nil
	return time.Since(began), killed
}

// Stop shuts the server down as pg_ctl stop -m fast would and returns how
// long that took, and whether the server had not finished within 5s and
// was killed. Start brings it back on the same port and data. For fault
// tests: use a cluster of their own.
func (c *Cluster) Stop(tb testing.TB) (took time.Duration, killed bool) {
	tb.Helper()
	return c.stop()
}

// Start starts a stopped server again.
func (c *Cluster) Start(tb testing.TB) {
	tb.Helper()
	if err := c.launch(); err != nil {
		tb.Fatalf("restarting cluster %s: %v", c.Name, err)
	}
}

// DSN returns a URL for a database of the cluster, with the Canary password.
func (c *Cluster) DSN(db string) string {
	return fmt.Sprintf("postgres://postgres:%s@127.0.0.1:%d/%s?sslmode=disable", Canary, c.Port, db)
}

// LogTail returns the last n lines of the server log.
func (c *Cluster) LogTail(n int) string {
	b, _ := os.ReadFile(c.log)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// NewDB creates a fresh database, dropped (with its slots) when the test ends.
// The server log is attached to a failed test.
func (c *Cluster) NewDB(tb testing.TB) (dsn string) {
	tb.Helper()
	c.mu.Lock()
	c.dbs++
	name := fmt.Sprintf("t%d_%s", c.dbs, sanitize(tb.Name()))
	c.mu.Unlock()
	if len(name) > 60 {
		name = name[:60]
	}
	c.Exec(tb, "postgres", "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
	tb.Cleanup(func() {
		if tb.Failed() {
			tb.Logf("server log of cluster %s:\n%s", c.Name, c.LogTail(30))
		}
		c.drop(name)
	})
	return c.DSN(name)
}

func (c *Cluster) drop(db string) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, c.DSN("postgres"))
	if err != nil {
		return
	}
	defer conn.Close(ctx)
	// Until the slots' walsenders have let go of the database.
	Until(5*time.Second, func() bool {
		conn.Exec(ctx, `SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE database = $1 AND active_pid IS NOT NULL`, db)
		conn.Exec(ctx, `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = $1 AND NOT active`, db)
		_, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{db}.Sanitize()+" WITH (FORCE)")
		return err == nil
	})
}

// Exec runs SQL statements in a database of the cluster (by name), failing the test on error.
func (c *Cluster) Exec(tb testing.TB, db string, sql string, args ...any) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, c.DSN(db))
	if err != nil {
		tb.Fatalf("connecting to %s/%s: %v", c.Name, db, err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql, args...); err != nil {
		tb.Fatalf("exec on %s/%s: %v\n%s", c.Name, db, err, sql)
	}
}

func sanitize(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	return b.String()
}

// Connect opens a connection to dsn, closed when the test ends.
func Connect(tb testing.TB, dsn string) *pgx.Conn {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		tb.Fatalf("connecting: %v", errors.Unwrap(err))
	}
	tb.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// MustExec runs sql on conn, failing the test on error.
func MustExec(tb testing.TB, conn *pgx.Conn, sql string, args ...any) {
	tb.Helper()
	if _, err := conn.Exec(context.Background(), sql, args...); err != nil {
		tb.Fatalf("exec: %v\n%s", err, sql)
	}
}
