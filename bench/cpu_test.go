package bench_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cdcbridge/cdcbridge/internal/pgtest"
)

// The drains are CPU-bound on a small machine, and CPU time is what the
// processes of each side cost, whatever else the machine is doing. So each
// backlog also prints the CPU seconds every process spent on it, per row:
// cdcbridge's daemon and the server processes it uses, PostgreSQL's
// walsender and apply worker.

// ticksPerSecond is the kernel's USER_HZ for /proc/<pid>/stat (100 on
// every Linux this runs on).
const ticksPerSecond = 100

// cpuSeconds is the user+system CPU time of a live process, -1 if unknown.
func cpuSeconds(pid int) float64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return -1
	}
	// The command name (field 2) may hold spaces: count from after it.
	s := string(data)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return -1
	}
	u, _ := strconv.ParseFloat(f[11], 64)
	k, _ := strconv.ParseFloat(f[12], 64)
	return (u + k) / ticksPerSecond
}

// serverCPU adds up the CPU time of the processes of c's database that
// serve replication or clients (not c's own backend), by what they are:
// the walsenders, the subscription's apply worker, the client backends.
func serverCPU(b *testing.B, c *pgx.Conn, side string, into map[string]float64) {
	b.Helper()
	rows, err := c.Query(context.Background(), `SELECT pid, backend_type FROM pg_stat_activity
		WHERE pid <> pg_backend_pid() AND datname = current_database() AND backend_type IN ('walsender', 'logical replication worker', 'client backend')`)
	if err != nil {
		b.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var pid int
		var kind string
		if err := rows.Scan(&pid, &kind); err != nil {
			b.Fatal(err)
		}
		if kind == "logical replication worker" {
			kind = "apply worker"
		}
		if s := cpuSeconds(pid); s >= 0 {
			into[side+" "+kind] += s
		}
	}
	if err := rows.Err(); err != nil {
		b.Fatal(err)
	}
}

// cpuLine formats CPU seconds per unit of work, in µs, largest first.
func cpuLine(who string, cpu map[string]float64, units float64) string {
	names := make([]string, 0, len(cpu))
	total := 0.0
	for n, s := range cpu {
		names = append(names, n)
		total += s
	}
	sort.Slice(names, func(i, j int) bool { return cpu[names[i]] > cpu[names[j]] })
	parts := make([]string, 0, len(names))
	for _, n := range names {
		parts = append(parts, fmt.Sprintf("%s %.1f", n, cpu[n]/units*1e6))
	}
	return fmt.Sprintf("%s %.1f µs CPU each (%s)", who, total/units*1e6, strings.Join(parts, ", "))
}

// The ceiling slot is made on the source before the load, beside the
// subscription's: reading it alone measures how fast one walsender can
// decode the backlog, the bound on any consumer of one slot.
func ceilingSlot(p *pair) string { return p.sub + "_ceiling" }

func makeCeilingSlot(b *testing.B, p *pair) {
	b.Helper()
	exec1(b, p.src, `SELECT pg_create_logical_replication_slot($1, 'pgoutput')`, ceilingSlot(p))
	b.Cleanup(func() {
		p.src.Exec(context.Background(), `SELECT pg_drop_replication_slot($1) FROM pg_replication_slots WHERE slot_name = $1`, ceilingSlot(p))
	})
}

// readCeilingSlot reads the backlog from the ceiling slot with
// pg_recvlogical into /dev/null, up to the source's current LSN, and
// returns how long it took.
func readCeilingSlot(b *testing.B, p *pair) time.Duration {
	b.Helper()
	end := scalar(b, p.src, `SELECT pg_current_wal_lsn()::text`)
	cmd := exec.Command(filepath.Join(pgtest.BinDir(), "pg_recvlogical"), "-d", p.srcDSN, "-S", ceilingSlot(p), "--start",
		"-o", "proto_version=1", "-o", "publication_names=bench_pub", "-E", end, "--no-loop", "-f", "/dev/null")
	t0 := time.Now()
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("pg_recvlogical: %v\n%s", err, out)
	}
	took := time.Since(t0)
	exec1(b, p.src, `SELECT pg_drop_replication_slot($1)`, ceilingSlot(p))
	return took
}
