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
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/callrelay/callrelay/internal/postgres"
)

// StopMode is how Stop shuts the server down (pg_ctl stop -m).
type StopMode string

const (
	// Fast disconnects the clients, checkpoints and exits cleanly.
	Fast StopMode = "fast"
	// Immediate kills the server without a checkpoint, like a crash: the next start recovers
	// from the WAL.
	Immediate StopMode = "immediate"
)

const (
	// clusterSuperuser is the superuser role of a private cluster; authentication is trust.
	clusterSuperuser = "postgres"
	// clusterOSUser runs the cluster when we are root (initdb and postgres refuse root).
	clusterOSUser = "postgres"
)

// Cluster is a private PostgreSQL server owned by one test, which the test may stop and start
// again (to see how callrelay lives through a database restart). It listens on a free port of
// 127.0.0.1 and on a Unix socket in its own directory; its data, with fsync off, is removed when
// the test ends. Its methods call t.Fatal, so call them from the test's goroutine.
type Cluster struct {
	bin     string // directory of initdb, pg_ctl and postgres
	root    string // data/, run/ (the socket), postgres.log
	data    string
	sockDir string // in root, unless that path is too long for a socket's name
	logFile string
	port    int
	// cred runs the server's programs as another user (as root: postgres refuses root); nil
	// runs them as ourselves.
	cred *syscall.Credential

	mu      sync.Mutex // guards running
	running bool

	tmplMu   sync.Mutex // serialises building the template
	template string     // migrated template database, once built
}

// StartCluster creates a cluster with initdb in a temporary directory and starts it. It is
// stopped (immediately) and removed when t ends. Without PostgreSQL's server programs the test
// is skipped, except under CI=true, where it fails.
func StartCluster(t testing.TB) *Cluster {
	t.Helper()
	bin, err := serverBinDir()
	if err != nil {
		clusterUnavailable(t, err)
	}
	c := &Cluster{bin: bin}
	owner := ""
	if os.Geteuid() == 0 {
		// initdb and postgres refuse to run as root: the cluster belongs to the postgres
		// system user, which the postgresql packages create.
		u, err := user.Lookup(clusterOSUser)
		if err != nil {
			clusterUnavailable(t, fmt.Errorf("running as root, and there is no %q system user to run the server as (initdb and postgres refuse root): %w", clusterOSUser, err))
		}
		uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
		gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
		if err := errors.Join(err1, err2); err != nil {
			t.Fatalf("pgtest: user %s: %v", u.Username, err)
		}
		c.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		owner = " (as user " + u.Username + ")"
	}

	c.root, err = os.MkdirTemp("", "pgtest-cluster-")
	if err != nil {
		t.Fatalf("pgtest: cluster directory: %v", err)
	}
	t.Cleanup(func() { c.cleanup(t) })
	c.data = filepath.Join(c.root, "data")
	c.logFile = filepath.Join(c.root, "postgres.log")
	c.sockDir = filepath.Join(c.root, "run")
	if len(c.sockDir+"/.s.PGSQL.65535") < 100 { // a socket's name has room for 107 bytes
		err = os.Mkdir(c.sockDir, 0o700)
	} else {
		c.sockDir, err = os.MkdirTemp("/tmp", "pgtest-sock-")
	}
	if err != nil {
		t.Fatalf("pgtest: cluster socket directory: %v", err)
	}
	if c.cred != nil {
		for _, dir := range []string{c.root, c.sockDir} {
			if err := os.Chown(dir, int(c.cred.Uid), int(c.cred.Gid)); err != nil {
				t.Fatalf("pgtest: give %s to the cluster's user: %v", dir, err)
			}
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := c.command(ctx, "initdb", "-D", c.data, "-U", clusterSuperuser, "-A", "trust",
		"--encoding=UTF8", "--locale=C", "--no-sync").CombinedOutput()
	if err != nil {
		hint := ""
		if c.cred != nil {
			hint = fmt.Sprintf("(may that user enter every parent of %s? if not, set TMPDIR to a directory it may)\n", c.root)
		}
		t.Fatalf("pgtest: initdb%s in %s: %v\n%s%s", owner, c.data, err, tail(string(out), 20), hint)
	}

	// A free port, found by listening on it, may be taken again before the server binds it:
	// try another then.
	for attempt := 1; ; attempt++ {
		c.port, err = freePort()
		if err != nil {
			t.Fatalf("pgtest: free port: %v", err)
		}
		if err := c.writeConfig(); err != nil {
			t.Fatalf("pgtest: cluster configuration: %v", err)
		}
		log, err := c.start(ctx)
		if err == nil {
			break
		}
		if attempt < 3 && strings.Contains(log, "already in use") {
			continue
		}
		t.Fatalf("pgtest: start the cluster in %s: %v\npostgres.log:\n%s", c.data, err, log)
	}
	return c
}

// Port is the TCP port the cluster listens on (on 127.0.0.1), the same after every Start.
func (c *Cluster) Port() int { return c.port }

// AdminURL is the URL of the cluster's maintenance database, as its superuser.
func (c *Cluster) AdminURL() string {
	return fmt.Sprintf("postgres://%s@127.0.0.1:%d/postgres?sslmode=disable", clusterSuperuser, c.port)
}

// NewURL creates a database with callrelay's migrations applied, cloned from a template that
// the first call migrates, and returns its URL. The database lives as long as the cluster.
func (c *Cluster) NewURL(t testing.TB) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	tmpl, err := c.migratedTemplate(ctx)
	if err != nil {
		t.Fatalf("pgtest: template database in the private cluster: %v", err)
	}
	name := "callrelay_test_" + randomHex(8)
	if err := c.adminExec(ctx, fmt.Sprintf(`CREATE DATABASE %s TEMPLATE %s`, name, tmpl)); err != nil {
		t.Fatalf("pgtest: create database %s: %v", name, err)
	}
	return withDatabase(c.AdminURL(), name)
}

// Stop shuts the server down and waits until it has exited.
func (c *Cluster) Stop(t testing.TB, mode StopMode) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.running {
		t.Fatalf("pgtest: Stop: the cluster is not running")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := c.stop(ctx, mode); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
}

// Start starts the stopped server again, on the same port, and returns once it accepts
// connections (after crash recovery, if it was stopped with Immediate).
func (c *Cluster) Start(t testing.TB) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.running {
		t.Fatalf("pgtest: Start: the cluster is already running")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if log, err := c.start(ctx); err != nil {
		t.Fatalf("pgtest: start the cluster again on port %d: %v\npostgres.log:\n%s", c.port, err, log)
	}
}

// Restart stops the server with mode and starts it again; it returns once the server accepts
// connections.
func (c *Cluster) Restart(t testing.TB, mode StopMode) {
	t.Helper()
	c.Stop(t, mode)
	c.Start(t)
}

// start runs pg_ctl start, then makes sure the server answers. On failure it returns the
// server's log written since the call (its tail).
func (c *Cluster) start(ctx context.Context) (string, error) {
	var offset int64
	if fi, err := os.Stat(c.logFile); err == nil {
		offset = fi.Size()
	}
	out, err := c.command(ctx, "pg_ctl", "start", "-D", c.data, "-l", c.logFile, "-w", "-t", "60", "-s").CombinedOutput()
	if err != nil {
		return c.logSince(offset), fmt.Errorf("pg_ctl start: %w: %s", err, strings.TrimSpace(string(out)))
	}
	c.running = true
	// pg_ctl -w has waited until the server reported itself ready; a connection proves it.
	if err := c.ping(ctx, 30*time.Second); err != nil {
		return c.logSince(offset), err
	}
	return "", nil
}

func (c *Cluster) stop(ctx context.Context, mode StopMode) error {
	out, err := c.command(ctx, "pg_ctl", "stop", "-D", c.data, "-m", string(mode), "-w", "-t", "60", "-s").CombinedOutput()
	if err != nil {
		return fmt.Errorf("pg_ctl stop -m %s: %w: %s\npostgres.log:\n%s", mode, err, strings.TrimSpace(string(out)), c.logSince(0))
	}
	c.running = false
	return nil
}

// ping connects until the server answers or timeout passes.
func (c *Cluster) ping(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		conn, err := pgx.Connect(ctx, c.AdminURL())
		if err == nil {
			err = conn.Ping(ctx)
			conn.Close(ctx)
			if err == nil {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("server on port %d does not answer: %w", c.port, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// cleanup stops the server, if it runs, and removes the cluster's directory.
func (c *Cluster) cleanup(t testing.TB) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.running {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		err := c.stop(ctx, Immediate)
		cancel()
		if err != nil {
			// A server left running notices its lock file gone and exits within a minute.
			t.Errorf("pgtest: stop the private cluster: %v", err)
		}
	}
	if err := errors.Join(os.RemoveAll(c.root), os.RemoveAll(c.sockDir)); err != nil {
		t.Errorf("pgtest: remove the private cluster: %v", err)
	}
}

// migratedTemplate returns the cluster's migrated template database, building it on the first
// call. A failed build is tried again by the next call.
func (c *Cluster) migratedTemplate(ctx context.Context) (string, error) {
	c.tmplMu.Lock()
	defer c.tmplMu.Unlock()
	if c.template != "" {
		return c.template, nil
	}
	const name = "callrelay_tmpl"
	if err := c.adminExec(ctx, `DROP DATABASE IF EXISTS `+name+` WITH (FORCE)`); err != nil {
		return "", err
	}
	if err := c.adminExec(ctx, `CREATE DATABASE `+name); err != nil {
		return "", err
	}
	pool, err := pgxpool.New(ctx, withDatabase(c.AdminURL(), name))
	if err != nil {
		return "", err
	}
	err = postgres.Migrate(ctx, pool)
	pool.Close() // a template may have no connections when it is cloned
	if err != nil {
		return "", err
	}
	c.template = name
	return name, nil
}

func (c *Cluster) adminExec(ctx context.Context, sql string) error {
	conn, err := pgx.Connect(ctx, c.AdminURL())
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, sql)
	return err
}

// writeConfig appends the cluster's settings to postgresql.conf (the last setting of a name
// wins, so a new port overrides the one tried before).
func (c *Cluster) writeConfig() error {
	f, err := os.OpenFile(filepath.Join(c.data, "postgresql.conf"), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(f, `
# pgtest: a private, throwaway cluster
listen_addresses = '127.0.0.1'
port = %d
unix_socket_directories = '%s'
fsync = off
full_page_writes = off
`, c.port, strings.ReplaceAll(c.sockDir, "'", "''"))
	return errors.Join(err, f.Close())
}

// command runs one of the server's programs, as the cluster's owner, from the cluster's
// directory (which that user may enter), without the PG* variables of our environment.
func (c *Cluster) command(ctx context.Context, program string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, filepath.Join(c.bin, program), args...)
	cmd.Dir = c.root
	cmd.Env = slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "PG") })
	if c.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred}
	}
	return cmd
}

// logSince returns the tail of the server log from offset on.
func (c *Cluster) logSince(offset int64) string {
	b, err := os.ReadFile(c.logFile)
	if err != nil {
		return fmt.Sprintf("(no server log: %v)", err)
	}
	if offset > int64(len(b)) {
		offset = 0
	}
	return tail(string(b[offset:]), 20)
}

func tail(s string, n int) string {
	if strings.TrimSpace(s) == "" {
		return ""
	}
	lines := strings.SplitAfter(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "") + "\n"
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

var serverBinDir = sync.OnceValues(findServerBinDir)

// findServerBinDir finds the directory holding initdb, pg_ctl and postgres: initdb's on PATH
// (through symbolic links), else the newest /usr/lib/postgresql/*/bin.
func findServerBinDir() (string, error) {
	complete := func(dir string) bool {
		for _, p := range []string{"initdb", "pg_ctl", "postgres"} {
			if fi, err := os.Stat(filepath.Join(dir, p)); err != nil || fi.Mode()&0o111 == 0 {
				return false
			}
		}
		return true
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		if p, err := filepath.EvalSymlinks(p); err == nil && complete(filepath.Dir(p)) {
			return filepath.Dir(p), nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	slices.SortFunc(dirs, func(a, b string) int { // newest first
		return compareVersions(filepath.Base(filepath.Dir(b)), filepath.Base(filepath.Dir(a)))
	})
	for _, d := range dirs {
		if complete(d) {
			return d, nil
		}
	}
	return "", errors.New("PostgreSQL server programs (initdb, pg_ctl, postgres) not found on PATH or in /usr/lib/postgresql/*/bin")
}

// compareVersions compares dotted versions such as "9.6" and "17" numerically.
func compareVersions(a, b string) int {
	as, bs := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < len(as) || i < len(bs); i++ {
		var x, y int
		if i < len(as) {
			x, _ = strconv.Atoi(as[i])
		}
		if i < len(bs) {
			y, _ = strconv.Atoi(bs[i])
		}
		if x != y {
			return x - y
		}
	}
	return 0
}

func clusterUnavailable(t testing.TB, err error) {
	t.Helper()
	const hint = "install the server: apt-get install postgresql"
	if os.Getenv("CI") == "true" {
		t.Fatalf("pgtest: cannot run a private PostgreSQL cluster under CI=true: %v (%s)", err, hint)
	}
	t.Skipf("pgtest: cannot run a private PostgreSQL cluster: %v (%s)", err, hint)
}
