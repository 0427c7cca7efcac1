// Command callsim plays call scenarios against a running callrelay as Twilio would, with no
// Twilio account: it signs every webhook with TWILIO_AUTH_TOKEN, follows the TwiML, sends the
// status callbacks and conference events, and is the REST API callrelay talks to (start
// callrelay with TWILIO_API_URL pointing at callsim's -listen address). Each scenario prints
// its timeline; callsim exits 1 when any call did not go as its scenario expects.
//
//	callsim [flags] scenario.yaml...
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/callrelay/callrelay/internal/twiliosim"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout)
	var failed errScenarios
	switch {
	case errors.As(err, &failed):
		fmt.Fprintln(os.Stderr, "callsim:", err)
		os.Exit(1)
	case err != nil:
		fmt.Fprintln(os.Stderr, "callsim:", err)
		os.Exit(2)
	}
}

// errScenarios reports scenarios whose call did not go as expected.
type errScenarios []string

func (e errScenarios) Error() string {
	return fmt.Sprintf("%d scenario(s) failed: %s", len(e), strings.Join(e, ", "))
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	fs := flag.NewFlagSet("callsim", flag.ContinueOnError)
	fs.SetOutput(stdout)
	baseURL := fs.String("url", or(getenv("CALLRELAY_PUBLIC_URL"), "http://localhost:8080"), "callrelay's public URL (CALLRELAY_PUBLIC_URL): the voice webhook is sent to <url>/twilio/voice")
	listen := fs.String("listen", "127.0.0.1:4010", "address of the simulated Twilio REST API: start callrelay with TWILIO_API_URL=http://<this address>")
	apiURL := fs.String("api-url", "", "the URL callrelay reaches the REST API at, if not http://<listen>")
	speed := fs.Float64("speed", 1, "simulated seconds per real second (callrelay's own timers stay real: keep 1 for conference scenarios)")
	seed := fs.Uint64("seed", 0, "seed for reordering and SIDs (0: random)")
	wait := fs.Duration("wait", time.Minute, "how long to wait, after the call, for callrelay to reach the expected state (the email)")
	ready := fs.Duration("ready", 30*time.Second, "how long to wait for callrelay's /readyz before starting")
	quiet := fs.Bool("q", false, "print only failures and verdicts, not timelines")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: callsim [flags] scenario.yaml...   (TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN and CALLRELAY_OPS_TOKEN from the environment)")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return errors.New("no scenario given")
	}
	cfg := twiliosim.Config{
		AccountSID: getenv("TWILIO_ACCOUNT_SID"),
		AuthToken:  getenv("TWILIO_AUTH_TOKEN"),
		OpsToken:   getenv("CALLRELAY_OPS_TOKEN"),
		BaseURL:    *baseURL,
		APIURL:     or(*apiURL, "http://"+*listen),
		Clock:      twiliosim.NewClock(time.Now(), *speed),
	}
	for name, v := range map[string]string{"TWILIO_ACCOUNT_SID": cfg.AccountSID, "TWILIO_AUTH_TOKEN": cfg.AuthToken, "CALLRELAY_OPS_TOKEN": cfg.OpsToken} {
		if v == "" {
			return fmt.Errorf("%s is not set: callsim needs callrelay's (for `make run`: eval \"$(scripts/devenv.sh env)\")", name)
		}
	}
	if *seed != 0 {
		cfg.Rand = mrand.New(mrand.NewPCG(*seed, *seed))
	}
	if !*quiet {
		cfg.Log = func(e twiliosim.Entry) { fmt.Fprintln(stdout, e) }
	}
	var scenarios []*twiliosim.Scenario
	for _, p := range fs.Args() {
		sc, err := twiliosim.LoadScenario(p)
		if err != nil {
			return err
		}
		scenarios = append(scenarios, sc)
	}
	sim, err := twiliosim.New(cfg)
	if err != nil {
		return err
	}

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("REST API: %w", err)
	}
	srv := &http.Server{Handler: sim, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	fmt.Fprintf(stdout, "callsim: Twilio REST API on %s; callrelay at %s; speed %gx\n", cfg.APIURL, cfg.BaseURL, *speed)

	if err := awaitReady(ctx, cfg.BaseURL, *ready); err != nil {
		return err
	}
	var failed errScenarios
	for _, sc := range scenarios {
		fmt.Fprintf(stdout, "\n== %s\n", sc.Name)
		if sc.At != "" {
			// The call's time is callrelay's clock, which a running callrelay reads from the
			// machine: only the test harness (internal/app) can start it at another instant.
			fmt.Fprintf(stdout, "SKIP %s: at %q needs callrelay's clock set (go test ./internal/app -run TestScenarios)\n", sc.Name, sc.At)
			continue
		}
		res, err := sim.Run(ctx, sc, *wait)
		if err != nil {
			return err
		}
		for _, n := range res.Notes {
			fmt.Fprintf(stdout, "note: %s\n", n)
		}
		if res.CallJSON != "" {
			fmt.Fprintf(stdout, "callrelay's call: %s\n", res.CallJSON)
		}
		for _, f := range res.Failures {
			fmt.Fprintf(stdout, "FAIL: %s\n", f)
		}
		verdict := "PASS"
		if !res.OK() {
			verdict = "FAIL"
			failed = append(failed, sc.Name)
		}
		fmt.Fprintf(stdout, "%s %s (call %s)\n", verdict, sc.Name, res.CallSid)
	}
	if len(failed) > 0 {
		return failed
	}
	return nil
}

// awaitReady waits for callrelay's /readyz (database reachable, schema current).
func awaitReady(ctx context.Context, baseURL string, limit time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	u := strings.TrimRight(baseURL, "/") + "/readyz"
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			return err
		}
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("callrelay at %s is not ready after %s (is it running? make run)", baseURL, limit)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func or(v, def string) string {
	if v != "" {
		return v
	}
	return def
}
