// Command with-servers starts the real servers the tests use (Mailpit, MinIO,
// toxiproxy) on free 127.0.0.1 ports, exports their addresses, runs a command,
// and stops them.
//
//	go run ./internal/testservers/with-servers -mailpit BIN -minio BIN -toxiproxy BIN -- go test ./...
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"time"

	"tally/internal/testservers"
)

func main() {
	mailpit := flag.String("mailpit", "", "path to the mailpit binary")
	minio := flag.String("minio", "", "path to the minio binary")
	toxiproxy := flag.String("toxiproxy", "", "path to the toxiproxy server binary")
	flag.Parse()
	if flag.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: with-servers [-mailpit BIN] [-minio BIN] [-toxiproxy BIN] -- COMMAND...")
		os.Exit(2)
	}
	var procs []*exec.Cmd
	stop := func() {
		for _, p := range procs {
			p.Process.Kill()
			p.Wait()
		}
	}
	fail := func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, "with-servers: "+format+"\n", args...)
		stop()
		os.Exit(1)
	}
	// launch starts a server and waits until ready answers 200.
	launch := func(name string, cmd *exec.Cmd, ready string, timeout time.Duration) {
		if cmd.Stderr == nil {
			cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		}
		if err := cmd.Start(); err != nil {
			fail("start %s: %v", name, err)
		}
		procs = append(procs, cmd)
		if err := waitHTTP(ready, timeout); err != nil {
			fail("%s did not become ready: %v", name, err)
		}
	}
	if *mailpit != "" {
		smtp, web := freePort(), freePort()
		db, err := os.MkdirTemp("", "tally-mailpit-")
		if err != nil {
			fail("%v", err)
		}
		defer os.RemoveAll(db)
		cmd := exec.Command(*mailpit, "--listen", web, "--smtp", smtp, "--database", db+"/mailpit.db",
			"--disable-version-check", "--smtp-disable-rdns", "--smtp-auth-accept-any", "--smtp-auth-allow-insecure",
			"--max", "5000", "--quiet")
		api := "http://" + web
		launch("mailpit", cmd, api+"/livez", 20*time.Second)
		os.Setenv(testservers.EnvSMTP, smtp)
		os.Setenv(testservers.EnvMailpit, api)
		fmt.Fprintf(os.Stderr, "with-servers: mailpit smtp %s, api %s\n", smtp, api)

		// A second Mailpit that takes one login only, for the tests of a refused AUTH.
		authSMTP, authWeb := freePort(), freePort()
		const user, password = "tally", "the-right-password"
		if err := os.WriteFile(db+"/smtp-auth", []byte(user+":"+password+"\n"), 0o600); err != nil {
			fail("%v", err)
		}
		authCmd := exec.Command(*mailpit, "--listen", authWeb, "--smtp", authSMTP, "--database", db+"/mailpit-auth.db",
			"--disable-version-check", "--smtp-disable-rdns", "--smtp-auth-file", db+"/smtp-auth", "--smtp-auth-allow-insecure", "--quiet")
		authCmd.Stdout, authCmd.Stderr = io.Discard, io.Discard // it logs every refusal the tests provoke
		launch("mailpit (with a login)", authCmd, "http://"+authWeb+"/livez", 20*time.Second)
		os.Setenv(testservers.EnvSMTPAuth, authSMTP)
		os.Setenv(testservers.EnvSMTPAuthUser, user)
		os.Setenv(testservers.EnvSMTPAuthPassword, password)
		fmt.Fprintf(os.Stderr, "with-servers: mailpit with a login, smtp %s\n", authSMTP)
	}
	if *minio != "" {
		addr, console := freePort(), freePort()
		dir, err := os.MkdirTemp("", "tally-minio-")
		if err != nil {
			fail("%v", err)
		}
		defer os.RemoveAll(dir)
		const user, secret = "tallytest", "tallytest-secret"
		cmd := exec.Command(*minio, "server", dir, "--address", addr, "--console-address", console, "--quiet")
		// MINIO_UPDATE=off: MinIO must never reach beyond 127.0.0.1.
		cmd.Env = append(os.Environ(), "MINIO_UPDATE=off", "MINIO_ROOT_USER="+user, "MINIO_ROOT_PASSWORD="+secret, "MINIO_BROWSER=off")
		endpoint := "http://" + addr
		launch("minio", cmd, endpoint+"/minio/health/ready", 60*time.Second)
		os.Setenv(testservers.EnvS3, endpoint)
		os.Setenv(testservers.EnvS3Key, user)
		os.Setenv(testservers.EnvS3Secret, secret)
		fmt.Fprintf(os.Stderr, "with-servers: minio %s\n", endpoint)
	}
	if *toxiproxy != "" {
		addr := freePort()
		host, port, _ := net.SplitHostPort(addr)
		api := "http://" + addr
		cmd := exec.Command(*toxiproxy, "-host", host, "-port", port)
		cmd.Env = append(os.Environ(), "LOG_LEVEL=error")
		launch("toxiproxy", cmd, api+"/version", 20*time.Second)
		os.Setenv(testservers.EnvToxiproxy, api)
		fmt.Fprintf(os.Stderr, "with-servers: toxiproxy %s\n", api)
	}
	cmd := exec.Command(flag.Arg(0), flag.Args()[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	err := cmd.Run()
	stop()
	if ee, ok := err.(*exec.ExitError); ok {
		os.Exit(ee.ExitCode())
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "with-servers:", err)
		os.Exit(1)
	}
}

// freePort asks the kernel for a free 127.0.0.1 port.
func freePort() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func waitHTTP(url string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: %v", url, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}
